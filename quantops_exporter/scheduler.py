"""The catalog as APScheduler 3 jobs: one per check, never overlapping, first run at once.

A check never overlaps itself, not even across reloads nor with a run on demand: every run
takes the check's lane (`Lanes`, one for the daemon's life, shared by every generation's
schedule) and a run that finds it taken is skipped and counted, as APScheduler does within
one schedule (`max_instances=1`). A reload pauses the old schedule before it starts the new
one. Stopping lets in-flight runs finish (and be recorded) within a grace (a reload gives
their timeout, in the background; the daemon's exit none), then drops the rest quietly: a run
cancelled by a stop is never recorded.

Cadence is kept by monotonic time across wall-clock steps (NTP, a VM resumed): APScheduler 3
computes run times on the wall clock, so a step back of an hour would freeze every check for an
hour and a step forward would leave the scheduler asleep past its jobs. `SteadyJobStore`
notices a step (`ClockStepWatch`) and moves every job's next run time by it, through
APScheduler's public interfaces only (a job store of its own, `modify_job`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Check, CheckContext, Outcome
from quantops_exporter.metrics import SchedulerMetrics
from quantops_exporter.runner import run_check

log = structlog.get_logger("quantops_exporter.scheduler")

# Spread the first runs over at most this long, so the checks do not all hit Valkey in one instant.
MAX_START_JITTER = 1.0
# A move of the wall clock against the monotonic clock larger than this is a step; NTP slewing
# moves it by at most 0.5 ms a second.
CLOCK_STEP_THRESHOLD = 0.5
# A run on demand is refused when the check's scheduled run falls due within its timeout and
# this much more (the bookkeeping around a run), so that it never makes a scheduled run skip.
DUE_MARGIN = 0.25
# How often the watchdog looks for a step while the scheduler sleeps (perhaps until a wall time
# an hour away, after a step back).
CLOCK_WATCH_PERIOD = 1.0


class ClockStepWatch:
    """Notices steps of the wall clock: `time.time() - time.monotonic()` moving by more than
    `threshold` seconds between two looks. The baseline follows every look, so slewing, however
    long, never adds up to a step."""

    def __init__(
        self,
        threshold: float = CLOCK_STEP_THRESHOLD,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._wall = wall
        self._monotonic = monotonic
        self._offset = self._read()

    def _read(self) -> float:
        # The wall clock read between two monotonic reads: a preemption cannot pass for a step.
        before = self._monotonic()
        wall = self._wall()
        return wall - (before + self._monotonic()) / 2

    def reset(self) -> None:
        """Take the present offset as the baseline (times computed from now on are in it)."""
        self._offset = self._read()

    def poll(self) -> float:
        """The step since the last look, in seconds (negative: back); 0.0 when there was none."""
        offset = self._read()
        step = offset - self._offset
        self._offset = offset
        return step if abs(step) > self._threshold else 0.0


# APScheduler ships no type information (mypy sees Any).
class SteadyJobStore(MemoryJobStore):  # type: ignore[misc]
    """APScheduler's memory job store, whose jobs keep their cadence by monotonic time across
    wall-clock steps: every job's next run time moves by the step, so a job falls due when it
    would have without the step (no freeze after a step back, no catch-up burst nor misfire
    after a step forward).

    Steps are looked for whenever the scheduler asks for the jobs due (`get_due_jobs`, right
    after it read its clock) and by `follow_step()`, which the scheduler's watchdog calls every
    CLOCK_WATCH_PERIOD seconds while the scheduler sleeps (perhaps until a wall time an hour
    away, after a step back). Jobs are moved through the scheduler's `modify_job`, which wakes
    it up. Only APScheduler's documented interfaces: a job store, `modify_job`, `wakeup`.
    """

    def __init__(self, *, on_step: Callable[[float], None], watch: ClockStepWatch) -> None:
        super().__init__()
        self.watch = watch
        self._on_step = on_step
        self._owner: Any = None
        self._name = ""

    def start(self, scheduler: Any, alias: str) -> None:
        """Keep the scheduler and this store's alias (to move jobs through the scheduler)."""
        super().start(scheduler, alias)
        self._owner, self._name = scheduler, alias

    def get_due_jobs(self, now: datetime) -> list[Any]:
        """The jobs due at `now`, after following a step of the wall clock."""
        self.follow_step(now)
        due: list[Any] = super().get_due_jobs(now)
        return due

    def follow_step(self, now: datetime | None = None) -> bool:
        """Move every scheduled job by the step, if the wall clock stepped since the last look."""
        step = self.watch.poll()
        if not step:
            return False
        shift = timedelta(seconds=step)
        now = now or datetime.now(UTC)
        for job in self.get_all_jobs():
            if job.next_run_time is None:  # paused
                continue
            moved = job.next_run_time + shift
            if isinstance(job.trigger, IntervalTrigger):
                # Never more than one interval away: a job whose time was computed in the new
                # frame already (a step just before the scheduler read its clock) is late by at
                # most one interval instead of frozen for the step.
                moved = min(moved, now + job.trigger.interval)
            self._owner.modify_job(job.id, self._name, next_run_time=moved)
        self._on_step(step)
        return True


class ClockWatchdog:
    """Looks for a step of the wall clock every `period` seconds on the event loop's own
    (monotonic) timer while the scheduler sleeps; moving the jobs wakes the scheduler."""

    def __init__(self, store: SteadyJobStore, period: float = CLOCK_WATCH_PERIOD) -> None:
        self._store = store
        self._period = period
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Look every period from now on (the event loop must be running)."""
        self._timer = asyncio.get_running_loop().call_later(self._period, self._look)

    def stop(self) -> None:
        """Stop looking."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _look(self) -> None:
        self._store.follow_step()
        self._timer = asyncio.get_running_loop().call_later(self._period, self._look)


class NotRun(StrEnum):
    """Why `run_now` made no run."""

    BUSY = "busy"  # a run of the check is going on
    DUE = "due"  # its scheduled run falls due before a run on demand would surely end
    STOPPING = "stopping"  # the schedule is stopping


@dataclass(frozen=True, slots=True)
class Refused:
    """A run on demand not made: why, and in how many seconds it may be asked again."""

    why: NotRun
    retry_after: float = 0.0


class Lanes:
    """The run going on of each check, whichever schedule (generation) or request made it: one
    at a time per check. Claiming and releasing never await, so no two runs can both claim."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._runs: dict[str, tuple[asyncio.Task[Any], float]] = {}
        self._monotonic = monotonic

    def claim(self, name: str, run: asyncio.Task[Any], timeout: float) -> bool:
        """Take the lane of check `name` for `run` (bounded by `timeout`); False while another
        run holds it."""
        holder = self._runs.get(name)
        if holder is not None and holder[0] is not run and not holder[0].done():
            return False
        self._runs[name] = (run, self._monotonic() + timeout)
        return True

    def release(self, name: str, run: asyncio.Task[Any]) -> None:
        """Free the lane, if `run` holds it."""
        holder = self._runs.get(name)
        if holder is not None and holder[0] is run:
            del self._runs[name]

    def busy_for(self, name: str) -> float:
        """At most how many more seconds the run holding the lane of `name` takes (0: free)."""
        holder = self._runs.get(name)
        if holder is None or holder[0].done():
            return 0.0
        return max(0.0, holder[1] - self._monotonic())


class CheckScheduler:
    """Runs every enabled check on its own interval and records each outcome on the board."""

    def __init__(
        self,
        checks: Iterable[Check],
        ctx: CheckContext,
        board: Board,
        metrics: SchedulerMetrics,
        *,
        rng: random.Random | None = None,
        watch: ClockStepWatch | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        self._checks = tuple(check for check in checks if check.enabled)
        self._lanes = lanes or Lanes()
        self._ctx = ctx
        self._board = board
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._store = SteadyJobStore(on_step=self._on_clock_step, watch=watch or ClockStepWatch())
        self._scheduler = AsyncIOScheduler(timezone=UTC, jobstores={"default": self._store})
        self._watchdog = ClockWatchdog(self._store)
        # The runs going on: scheduled ones, and on demand (run_now) in this schedule's sources.
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._submitted: set[str] = set()  # checks whose submitted run has not begun yet
        self._stopping = False
        self._shut_down = False

    def start(self) -> None:
        """Add one job per check and start; must be called with the event loop running."""
        # The first run times below are in the wall clock's present frame: a step since this
        # schedule was built (a reload opens its sources first) must not move them.
        self._store.watch.reset()
        now = datetime.now(UTC)
        for check in self._checks:
            jitter = self._rng.uniform(0, min(MAX_START_JITTER, check.interval / 10))
            self._scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=check.interval, timezone=UTC),
                args=(check,),
                id=check.name,
                name=check.name,
                max_instances=1,
                coalesce=True,
                # A run that could not start within one interval is dropped and counted.
                misfire_grace_time=max(1, int(check.interval)),
                next_run_time=now + timedelta(seconds=jitter),
            )
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_SUBMITTED
        )
        self._scheduler.start()
        self._watchdog.start()
        log.info("scheduler_started", checks=[c.name for c in self._checks])

    async def pause(self) -> None:
        """Submit no more runs (at once, unlike APScheduler's shutdown(): see stop()), and let
        the runs already submitted begin (and take their lanes)."""
        self._watchdog.stop()
        if self._scheduler.state == STATE_RUNNING:
            self._scheduler.pause()
        await asyncio.sleep(0)

    async def stop(self, grace: float) -> None:
        """Stop scheduling; give in-flight runs `grace` seconds, then drop them unrecorded.

        APScheduler's `shutdown()` takes effect a loop turn later and then cancels every run
        its executor holds: runs in flight would be dropped at once, and a run submitted in
        between would be cancelled before its first step, which APScheduler logs as an error
        with a traceback. So: `pause()` first (at once: nothing is submitted any more), one
        turn for the runs already submitted to begin, the grace, and only then the shutdown,
        which finds nothing left to cancel.
        """
        self._stopping = True
        await self.pause()
        if self._in_flight:
            _done, late = await asyncio.wait(set(self._in_flight), timeout=grace)
            if late:
                self._drop(late, grace)
                await asyncio.wait(late)
        if not self._shut_down and self._scheduler.running:
            self._shut_down = True  # once, whoever stops it
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # the shutdown is queued on the loop: let it happen

    def drop_runs(self) -> None:
        """Cancel the runs in flight now, unrecorded (the daemon exits): a `stop()` waiting out
        its grace goes on at once to its shutdown."""
        self._stopping = True
        self._drop(set(self._in_flight), 0.0)

    def _drop(self, runs: set[asyncio.Task[Any]], grace: float) -> None:
        if not runs:
            return
        for task in runs:
            task.cancel()
        # Expected when the daemon exits (no grace); worth a look after a reload's grace.
        dropped = log.warning if grace > 0 else log.info
        dropped("check_runs_dropped_on_stop", count=len(runs), grace_seconds=grace)

    async def run_now(self, check: Check) -> Outcome | Refused:
        """Run `check` now in this schedule's sources, unrecorded, in the caller's task (its
        trace is the caller's); or why not. A run on demand never makes a scheduled run skip:
        it is refused while a run of the check is going on, and when the check's next
        scheduled run falls due within the check's timeout. A stop drops a run under way like
        a scheduled one."""
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:
            return Refused(NotRun.STOPPING)
        busy = self._lanes.busy_for(check.name)
        if busy > 0:
            return Refused(NotRun.BUSY, busy)
        due = self._due_in(check)
        if due is not None and due < check.timeout + DUE_MARGIN:
            # After the scheduled run, which takes at most its timeout.
            return Refused(NotRun.DUE, due + check.timeout)
        if not self._lanes.claim(check.name, task, check.timeout):
            return Refused(NotRun.BUSY, self._lanes.busy_for(check.name))
        self._in_flight.add(task)
        try:
            return await run_check(check, self._ctx)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task.uncancel()  # the request answers that the daemon is stopping
            return Refused(NotRun.STOPPING)
        finally:
            self._in_flight.discard(task)
            self._lanes.release(check.name, task)

    def _due_in(self, check: Check) -> float | None:
        """Seconds until the check's next scheduled run (None: this schedule does not run it);
        0 while a run submitted has not begun (the job's next run time is already the next)."""
        if check.name in self._submitted:
            return 0.0
        job = self._scheduler.get_job(check.name)
        if job is None or job.next_run_time is None:
            return None
        due: datetime = job.next_run_time
        return max(0.0, (due - datetime.now(UTC)).total_seconds())

    async def _run(self, check: Check) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._submitted.discard(check.name)
        if not self._lanes.claim(check.name, task, check.timeout):
            # A run from before a reload, or on demand, is still going: as APScheduler does
            # for a run of its own (EVENT_JOB_MAX_INSTANCES), skip and count.
            self._overlapped(check.name)
            return
        self._in_flight.add(task)
        try:
            outcome = await run_check(check, self._ctx)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            return  # dropped by stop(): not an outcome of the check
        finally:
            self._in_flight.discard(task)
            self._lanes.release(check.name, task)
        self._board.record(outcome)

    def _on_clock_step(self, step: float) -> None:
        self._metrics.clock_steps.inc()
        log.warning("clock_step_detected", step_seconds=round(step, 3))

    def _on_event(self, event: JobEvent) -> None:
        # EVENT_JOB_MAX_INSTANCES arrives as a JobSubmissionEvent too: dispatch on the code.
        if event.code == EVENT_JOB_SUBMITTED and isinstance(event, JobSubmissionEvent):
            self._submitted.add(event.job_id)  # until its run begins (_run)
            # How late the run started against its schedule: a blocked loop or a slow
            # neighbour would show here first.
            now = datetime.now(UTC)
            for scheduled in event.scheduled_run_times:
                self._metrics.lag.labels(event.job_id).observe(
                    max(0.0, (now - scheduled).total_seconds())
                )
            return
        if event.code == EVENT_JOB_MISSED:
            self._metrics.missed.labels(event.job_id).inc()
            log.warning("check_run_missed", check=event.job_id)
        else:
            self._overlapped(event.job_id)

    def _overlapped(self, name: str) -> None:
        self._metrics.overlapped.labels(name).inc()
        log.warning("check_run_overlapped", check=name)
