"""Generations across reloads, with real Valkey: the exit closes every generation's sources,
even one still retiring after a reload."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
import redis.asyncio as redis

from quantops_exporter.daemon import Refusal
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.sources import http
from tests.conftest import patience, runtime_for
from tests.faults.test_reload_process import HungApi
from tests.integration.conftest import generation_for

pytestmark = pytest.mark.integration


async def clients(url: str) -> int:
    """How many clients the Valkey server has, this one not counted."""
    async with redis.from_url(url) as valkey:
        return len(await valkey.client_list()) - 1


async def test_the_exit_during_a_retirement_closes_its_sources(
    sim: SepSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM lands while the generation a reload replaced is closing its sources (its HTTP
    session slow to close, as over TLS): the exit waits for that close instead of cutting it
    short, so no Valkey connection is left open and nothing is reported unclosed."""
    assert sim.server is not None
    closing = asyncio.Event()
    close = http.HttpReader.close

    async def slow_close(self: http.HttpReader) -> None:
        closing.set()
        await asyncio.sleep(0.3)
        await close(self)

    monkeypatch.setattr(http.HttpReader, "close", slow_close)
    checks = {"valkey_ping": {"interval_seconds": 0.5, "timeout_seconds": 0.4}}
    generation = generation_for(sim, checks=checks)
    before = await clients(sim.server.url)
    runtime, _registry = runtime_for(generation, lambda: generation_for(sim, checks=checks))
    board = runtime.board
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        await runtime.start()
        async with asyncio.timeout(patience(5)):
            while board.states["valkey_ping"].latest is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert (await runtime.reload()).ok
        await asyncio.wait_for(closing.wait(), patience(5))  # the old generation is closing
        await runtime.stop()
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, unclosed
    async with asyncio.timeout(patience(5)):
        while await clients(sim.server.url) > before:  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.05)


async def test_runs_on_demand_queued_together_keep_the_minimum_interval(sim: SepSimulator) -> None:
    """A run on demand of trading_mode hangs on the API for its 1 s timeout while four more
    requests for valkey_ping queue behind it (one at a time), with a minimum interval of 30 s:
    once one has run the other three are refused as too soon, each checked after its wait (all
    four ran when the check came before it)."""
    async with HungApi() as api:
        checks = {"trading_mode": {"enabled": False, "interval_seconds": 60, "timeout_seconds": 1}}
        generation = generation_for(
            sim,
            sep_api_url=api.url,
            checks=checks,
            debug_runs=True,
            debug_run_min_interval_seconds=30,
        )
        runtime, _registry = runtime_for(generation)
        board = runtime.board
        await runtime.start()
        try:
            async with asyncio.timeout(patience(10)):
                while board.states["valkey_ping"].latest is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                # Its next scheduled run is ~5 s away: room for a run on demand.
                holding = asyncio.create_task(runtime.debug_run("trading_mode"))
                while not api.going["/api/trading/mode"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                runs = await asyncio.gather(*(runtime.debug_run("valkey_ping") for _ in range(4)))
                assert (await holding).outcome is not None
        finally:
            await runtime.stop()
    made = [run for run in runs if run.outcome is not None]
    assert len(made) == 1, runs
    assert [run.refused for run in runs if run.outcome is None] == [Refusal.TOO_SOON] * 3
