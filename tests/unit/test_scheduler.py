"""The scheduler: first run at once, never two runs of a check at a time, overlaps counted."""

from __future__ import annotations

import asyncio
import random

from prometheus_client import CollectorRegistry

from quantops_exporter.board import Board
from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.verdict import Reason, Status, Verdict
from quantops_exporter.metrics import SchedulerMetrics
from quantops_exporter.scheduler import CheckScheduler
from tests.factories import make_check, make_ctx


async def wait_for(condition, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until `condition()` holds (the scheduler runs on real time)."""
    async with asyncio.timeout(limit):
        # APScheduler fires on wall-clock time and offers no event to await: poll briefly.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_first_run_is_immediate_and_recorded() -> None:
    """A check with a one-hour interval still runs right after start."""

    async def run(ctx: CheckContext) -> Verdict:
        return Verdict(Status.OK, Reason.NONE, "ran")

    check = make_check(run, name="hourly", interval=3600, timeout=5)
    board = Board([check])
    registry = CollectorRegistry()
    scheduler = CheckScheduler(
        [check], make_ctx(), board, SchedulerMetrics(registry, [check]), rng=random.Random(1)
    )
    scheduler.start()
    try:
        await wait_for(board.ready, limit=3)
    finally:
        await scheduler.stop(grace=1)
    assert board.states["hourly"].latest is not None


async def test_slow_check_never_overlaps_itself() -> None:
    """A run longer than the interval blocks the next ones, which are counted as overlapping."""
    running = 0
    most = 0
    release = asyncio.Event()

    async def run(ctx: CheckContext) -> Verdict:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await release.wait()
        finally:
            running -= 1
        return Verdict(Status.OK, Reason.NONE, "slow")

    # A timeout above the interval (settings forbid it; the scheduler must cope anyway).
    check = make_check(run, name="slow", interval=0.05, timeout=5.0)
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry, [check])
    board = Board([check])
    scheduler = CheckScheduler([check], make_ctx(), board, metrics, rng=random.Random(1))
    scheduler.start()
    try:
        await wait_for(
            lambda: (
                (
                    registry.get_sample_value(
                        "quantops_exporter_scheduler_overlapping_runs_total", {"check": "slow"}
                    )
                    or 0
                )
                >= 3
            )
        )
        assert running == 1
        release.set()
        await wait_for(lambda: board.states["slow"].latest is not None)
    finally:
        await scheduler.stop(grace=1)
    assert most == 1


async def test_stop_cancels_runs_that_outlive_the_grace() -> None:
    """Shutdown waits for in-flight runs up to the grace period, then cancels them cleanly."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def run(ctx: CheckContext) -> Verdict:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    check = make_check(run, name="stuck", interval=60, timeout=30)
    registry = CollectorRegistry()
    scheduler = CheckScheduler(
        [check],
        make_ctx(),
        Board([check]),
        SchedulerMetrics(registry, [check]),
        rng=random.Random(1),
    )
    scheduler.start()
    await asyncio.wait_for(started.wait(), 3)
    await scheduler.stop(grace=0.05)
    assert cancelled.is_set()
