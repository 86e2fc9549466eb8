"""The scheduler: first run at once, never two runs of a check at a time, overlaps counted,
cadence kept across wall-clock steps."""

from __future__ import annotations

import ast
import asyncio
import logging
import random
import time
from datetime import UTC
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

import quantops_exporter
from quantops_exporter.board import Board
from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.verdict import Reason, Status, Verdict
from quantops_exporter.metrics import SchedulerMetrics
from quantops_exporter.scheduler import (
    CheckScheduler,
    ClockStepWatch,
    Lanes,
    NotRun,
    Refused,
    SteadyJobStore,
)
from tests.conftest import patience
from tests.factories import make_check, make_ctx


async def wait_for(condition, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until `condition()` holds (the scheduler runs on real time)."""
    async with asyncio.timeout(patience(limit)):
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


async def test_a_run_in_flight_at_stop_finishes_and_is_recorded() -> None:
    """Stopping gives a run in flight its grace: it finishes and its outcome is recorded,
    nothing is cancelled, nothing logged as an error."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def run(ctx: CheckContext) -> Verdict:
        started.set()
        await release.wait()
        return Verdict(Status.OK, Reason.NONE, "finished after the stop began")

    check = make_check(run, name="slow", interval=60, timeout=30)
    board = Board([check])
    scheduler = CheckScheduler(
        [check], make_ctx(), board, SchedulerMetrics(CollectorRegistry(), [check])
    )
    scheduler.start()
    await asyncio.wait_for(started.wait(), patience(3))
    with capture_logs() as logs:
        stopping = asyncio.create_task(scheduler.stop(grace=patience(5)))
        await asyncio.sleep(0.05)  # the stop is under way, several loop turns in
        assert not stopping.done()
        release.set()
        await stopping
    latest = board.states["slow"].latest
    assert latest is not None and latest.summary == "finished after the stop began"
    assert not [entry for entry in logs if entry["log_level"] in {"warning", "error"}]


class FirstRunNow(random.Random):
    """No start jitter: every first run is due the moment the scheduler starts."""

    def uniform(self, a: float, b: float) -> float:
        return a


async def test_a_stop_right_after_a_submission_cancels_nothing_unstarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Start, then stop at once (a reload does this to the old schedule): APScheduler submits
    the first runs a loop turn after `start()`. Stopping must not leave a run submitted but
    cancelled before its first step, which APScheduler logs as "Error running job" with a
    CancelledError traceback (it did, in a reload storm on CI)."""

    async def run(ctx: CheckContext) -> Verdict:
        return Verdict(Status.OK, Reason.NONE, "ran")

    checks = [make_check(run, name=f"check_{n}", interval=30, timeout=5) for n in range(5)]
    for _ in range(20):
        scheduler = CheckScheduler(
            checks,
            make_ctx(),
            Board(checks),
            SchedulerMetrics(CollectorRegistry(), checks),
            rng=FirstRunNow(),
        )
        scheduler.start()
        await scheduler.stop(grace=patience(1))
        await asyncio.sleep(0.01)  # any callback of a cancelled run has had its turn
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()


class Jitter(random.Random):
    """A start jitter of the given fraction of its range (0: the first run is due at once)."""

    def __init__(self, fraction: float) -> None:
        super().__init__(1)
        self._fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self._fraction


# The generation between the first and the last: without the check (disabled), replaced
# before its first run of it began (start jitter), or with that run skipped (the lane taken).
MIDDLE = {
    "without the check": (lambda check: [], FirstRunNow()),
    "replaced before its first run": (lambda check: [check], Jitter(1.0)),
    "its first run skipped": (lambda check: [check], FirstRunNow()),
}


@pytest.mark.parametrize(("middle", "rng"), MIDDLE.values(), ids=MIDDLE.keys())
async def test_a_check_never_overlaps_itself_across_three_generations(middle, rng) -> None:  # type: ignore[no-untyped-def]
    """Three schedules sharing the daemon's lanes, each paused and followed by the next as a
    reload does. The first's run of the check hangs: every later run due meanwhile is skipped
    and counted, never run beside it; once it ends, the third schedule runs the check on its
    cadence."""
    running = most = runs = 0
    release = asyncio.Event()

    async def run(ctx: CheckContext) -> Verdict:
        nonlocal running, most, runs
        running += 1
        runs += 1
        most = max(most, running)
        try:
            if runs == 1:
                await release.wait()
        finally:
            running -= 1
        return Verdict(Status.OK, Reason.NONE, f"run {runs}")

    check = make_check(run, name="hangs", interval=0.3, timeout=5)
    board = Board([check])
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry, [check])
    lanes = Lanes()

    def schedule(checks, rng):  # type: ignore[no-untyped-def]
        return CheckScheduler(checks, make_ctx(), board, metrics, rng=rng, lanes=lanes)

    first = schedule([check], FirstRunNow())
    first.start()
    await wait_for(lambda: running == 1)
    await first.pause()
    second = schedule(middle(check), rng)
    second.start()
    await second.pause()
    third = schedule([check], FirstRunNow())
    third.start()
    try:
        await asyncio.sleep(0.7)  # the third's first runs fall due while the first's hangs
        assert running == 1 and runs == 1
        release.set()
        await wait_for(lambda: runs >= 3)
    finally:
        for scheduler in (first, second, third):
            await scheduler.stop(grace=1)
    assert most == 1
    skipped = registry.get_sample_value(
        "quantops_exporter_scheduler_overlapping_runs_total", {"check": "hangs"}
    )
    assert skipped is not None and skipped >= 2


async def test_runs_on_demand_never_make_a_scheduled_run_skip() -> None:
    """A client asking for runs on demand as fast as it can (no minimum interval): each is
    refused while a run of the check is going on or its scheduled run falls due within the
    timeout, so every scheduled run is made and recorded, none skipped; some on demand run."""
    scheduled = on_demand = 0

    async def run(ctx: CheckContext) -> Verdict:
        await asyncio.sleep(0.1)
        return Verdict(Status.OK, Reason.NONE, "ran")

    check = make_check(run, name="asked", interval=1.0, timeout=0.2)
    board = Board([check])
    registry = CollectorRegistry()
    scheduler = CheckScheduler(
        [check], make_ctx(), board, SchedulerMetrics(registry, [check]), rng=FirstRunNow()
    )
    recorded: list[float] = []
    board.subscribe(lambda outcome: recorded.append(outcome.started_at))
    scheduler.start()
    refusals: set[NotRun] = set()
    try:
        async with asyncio.timeout(4):
            while True:
                result = await scheduler.run_now(check)
                if isinstance(result, Refused):
                    refusals.add(result.why)
                    assert result.retry_after > 0
                    await asyncio.sleep(0.005)
                else:
                    on_demand += 1
    except TimeoutError:
        pass
    finally:
        await scheduler.stop(grace=1)
    scheduled = len(recorded)
    skipped = registry.get_sample_value(
        "quantops_exporter_scheduler_overlapping_runs_total", {"check": "asked"}
    )
    assert not skipped, f"{skipped} scheduled runs skipped"
    assert scheduled >= 3, scheduled  # one a second over 4 s, first at once
    assert on_demand >= 1 and refusals == {NotRun.BUSY, NotRun.DUE}, (on_demand, refusals)


class SteppedClock:
    """A wall clock `skew` seconds off the real one, for a ClockStepWatch: moving `skew` is a
    step as the watch sees it (APScheduler itself keeps reading the real clock)."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


def test_clock_step_watch_reports_steps_not_slew() -> None:
    """Half a second of drift between two looks is slew; more is a step, reported once, signed."""
    wall, mono = [1_000.0], [10.0]
    watch = ClockStepWatch(wall=lambda: wall[0], monotonic=lambda: mono[0])
    for _ in range(100):  # 0.4 s of drift a look, 40 s in all: never a step
        wall[0] += 1.4
        mono[0] += 1.0
        assert watch.poll() == 0.0
    wall[0] -= 3600
    assert watch.poll() == pytest.approx(-3600)
    assert watch.poll() == 0.0
    wall[0] += 7200
    watch.reset()
    assert watch.poll() == 0.0


async def test_a_step_back_found_by_the_watchdog_keeps_the_cadence() -> None:
    """An hourly check that ran at start is due again an hour later by the wall clock; the wall
    clock steps back 3599.5 s: the watchdog moves the run back by as much (it runs about 0.5 s
    later, not an hour), logs `clock_step_detected` and counts the step."""
    runs = 0

    async def run(ctx: CheckContext) -> Verdict:
        nonlocal runs
        runs += 1
        return Verdict(Status.OK, Reason.NONE, "ran")

    check = make_check(run, name="hourly", interval=3600, timeout=5)
    clock = SteppedClock()
    registry = CollectorRegistry()
    scheduler = CheckScheduler(
        [check],
        make_ctx(),
        Board([check]),
        SchedulerMetrics(registry, [check]),
        rng=random.Random(1),
        watch=ClockStepWatch(wall=clock),
    )
    scheduler.start()
    try:
        await wait_for(lambda: runs == 1, limit=3)
        with capture_logs() as logs:
            clock.skew = -3599.5
            await wait_for(lambda: runs == 2, limit=3)
    finally:
        await scheduler.stop(grace=1)
    (step,) = [entry for entry in logs if entry["event"] == "clock_step_detected"]
    assert step["log_level"] == "warning"
    assert step["step_seconds"] == pytest.approx(-3599.5, abs=0.1)
    assert registry.get_sample_value("quantops_exporter_clock_steps_total") == 1


async def test_a_step_found_when_the_store_is_asked_for_due_jobs_keeps_every_run() -> None:
    """No watchdog: the step is found when the scheduler next asks the job store for the jobs
    due (right after it read its clock). Moved back an hour, the job is an hour overdue: one
    coalesced run, none missed, then its cadence. Moved forward an hour, it is at most one
    interval away, not frozen (the clamp: the scheduler's times may have been in the new frame
    already)."""
    runs = 0
    missed: list[JobEvent] = []
    steps: list[float] = []

    async def job() -> None:
        nonlocal runs
        runs += 1

    clock = SteppedClock()
    store = SteadyJobStore(on_step=steps.append, watch=ClockStepWatch(wall=clock))
    scheduler = AsyncIOScheduler(timezone=UTC, jobstores={"default": store})
    scheduler.add_job(
        job, IntervalTrigger(seconds=0.2, timezone=UTC), coalesce=True, misfire_grace_time=1
    )
    scheduler.add_listener(missed.append, EVENT_JOB_MISSED)
    scheduler.start()
    try:
        await wait_for(lambda: runs >= 2)
        clock.skew = -3600
        before = runs
        await asyncio.sleep(1.0)
        assert before + 3 <= runs <= before + 6
        clock.skew = 0
        before = runs
        await asyncio.sleep(1.0)
        assert before + 3 <= runs <= before + 6
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
    assert steps == [pytest.approx(-3600, abs=0.1), pytest.approx(3600, abs=0.1)]
    assert not missed


def test_the_package_uses_no_private_apscheduler_name() -> None:
    """Scheduling goes through APScheduler's documented interfaces: no attribute of theirs with
    a leading underscore is read or written anywhere in the package."""
    private = {"_process_jobs", "_eventloop", "_jobstores", "_jobstores_lock", "_modify"}
    found = []
    for path in Path(quantops_exporter.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private:
                found.append(f"{path.name}:{node.lineno} {node.attr}")
            if isinstance(node, ast.FunctionDef) and node.name in private:
                found.append(f"{path.name}:{node.lineno} def {node.name}")
    assert not found
