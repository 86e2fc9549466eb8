"""Integration fixtures: the simulated stack over a real Valkey server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from quantops_exporter.config import DEFAULT_PAIRS
from quantops_exporter.generation import Generation
from quantops_exporter.market import AlwaysOpenCalendar
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import ValkeyServer
from tests.conftest import make_generation

INSTRUMENTS = DEFAULT_PAIRS  # the eight hot-band pairs, as the stack runs them


@pytest.fixture
async def sim(own_valkey_server: ValkeyServer) -> AsyncIterator[SepSimulator]:
    """A healthy simulated stack on its own Valkey server (which scenarios may stop)."""
    simulator = SepSimulator(
        own_valkey_server.url,
        INSTRUMENTS,
        calendar=AlwaysOpenCalendar(),
        server=own_valkey_server,
        write_every=0.2,
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def generation_for(sim: SepSimulator, **values: object) -> Generation:
    """An exporter configuration pointing at `sim` (settings by field name)."""
    assert sim.server is not None
    values.setdefault("valkey_url", sim.server.url)
    values.setdefault("sep_api_url", sim.api_url)
    values.setdefault("allocator_url", sim.allocator_url)
    # One run sees "flat": no grace, so the diagnosis decides at once.
    values.setdefault("flat_grace_seconds", 0)
    return make_generation(hotband_pairs=sim.instruments, **values)
