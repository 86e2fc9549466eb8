"""Faults between the exporter and a real Valkey: slow, reset mid-pipeline, a clock jump.

A small TCP proxy in front of the real server injects latency or resets connections; every
fault must give the right status and reason and heal by itself when the fault stops.
"""

from __future__ import annotations

import pytest

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.generation import open_context
from quantops_exporter.runner import run_check
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.sources.health import Dependency, DependencyHealth
from tests.integration.conftest import generation_for
from tests.proxy import Faults, tcp_proxy

pytestmark = pytest.mark.integration
BY_NAME = {c.name: c for c in CHECKS}


async def test_slow_valkey_times_out_then_heals(sim: SepSimulator) -> None:
    """Latency beyond the timeout: error/timeout, Valkey down; latency gone: ok again."""
    assert sim.server is not None
    faults = Faults()
    async with tcp_proxy(sim.server.port, faults) as port:
        generation = generation_for(
            sim,
            valkey_url=f"redis://127.0.0.1:{port}/0",
            checks={"manifold_freshness": {"timeout_seconds": 0.3}},
        )
        health = DependencyHealth()
        manifold = generation.check("manifold_freshness")
        assert manifold is not None
        async with open_context(generation, health) as ctx:
            assert (await run_check(manifold, ctx)).status is Status.OK
            faults.delay = 0.6
            slow = await run_check(manifold, ctx)
            assert (slow.status, slow.reason) == (Status.ERROR, Reason.TIMEOUT)
            # The summary names what did not answer.
            assert "from Valkey GETRANGE ws:last:manifold:EUR_USD and 15 more" in slow.summary
            assert health.state[Dependency.VALKEY] is False
            faults.delay = 0.0
            healed = await run_check(manifold, ctx)
            assert healed.status is Status.OK and health.state[Dependency.VALKEY] is True


async def test_connection_reset_mid_pipeline_is_unreachable_then_heals(
    sim: SepSimulator,
) -> None:
    """The connection dies with the pipeline in flight: error/unreachable; then it heals."""
    assert sim.server is not None
    faults = Faults()
    async with tcp_proxy(sim.server.port, faults) as port:
        generation = generation_for(sim, valkey_url=f"redis://127.0.0.1:{port}/0")
        health = DependencyHealth()
        async with open_context(generation, health) as ctx:
            assert (await run_check(BY_NAME["signal_freshness"], ctx)).status is Status.OK
            faults.reset_requests = True
            reset = await run_check(BY_NAME["signal_freshness"], ctx)
            assert (reset.status, reset.reason) == (Status.ERROR, Reason.UNREACHABLE)
            assert health.state[Dependency.VALKEY] is False
            faults.reset_requests = False
            assert (await run_check(BY_NAME["signal_freshness"], ctx)).status is Status.OK


@pytest.mark.parametrize(
    ("jump", "status", "reason"),
    [
        (3600.0, Status.FAIL, Reason.STALE),  # our clock leaps forward: the data looks old
        (-3600.0, Status.ERROR, Reason.CLOCK_SKEW),  # it leaps back: the data is "from the future"
    ],
)
async def test_offset_between_our_clock_and_the_stacks_is_never_fresh(
    sim: SepSimulator, jump: float, status: Status, reason: Reason
) -> None:
    """Our clock an hour off the stack's: reported as stale or as skew, never as fresh.

    Logic, not process: the offset is an injected clock. What a real step of the wall clock does
    to the running daemon's scheduler is issue 10's libfaketime test, not this one."""
    import time

    generation = generation_for(sim)
    async with open_context(
        generation, DependencyHealth(), clock=lambda: time.time() + jump
    ) as ctx:
        outcome = await run_check(BY_NAME["manifold_freshness"], ctx)
    assert (outcome.status, outcome.reason) == (status, reason)
