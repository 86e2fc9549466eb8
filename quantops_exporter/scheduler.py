"""The catalog as APScheduler 3 jobs: one per check, never overlapping, first run at once.

A reload hands the new schedule the runs still in flight in the old one (`start(after=...)`):
a check's first new run waits for its old run, so a check never overlaps itself, not even
across generations. Stopping lets in-flight runs finish within a grace, then drops the rest
quietly: a run cancelled by a stop is never recorded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Check, CheckContext
from quantops_exporter.metrics import SchedulerMetrics
from quantops_exporter.runner import run_check

log = structlog.get_logger("quantops_exporter.scheduler")

# Spread the first runs over at most this long, so eight checks do not hit Valkey in one instant.
MAX_START_JITTER = 1.0


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
    ) -> None:
        self._checks = tuple(check for check in checks if check.enabled)
        self._ctx = ctx
        self._board = board
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._after: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def in_flight(self) -> Mapping[str, asyncio.Task[None]]:
        """The runs going on now, by check name."""
        return dict(self._in_flight)

    def start(self, after: Mapping[str, asyncio.Task[None]] | None = None) -> None:
        """Add one job per check and start; must be called with the event loop running.

        `after`: runs of a previous schedule still going; each check's first run waits for its own.
        """
        self._after = dict(after or {})
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
        log.info("scheduler_started", checks=[c.name for c in self._checks])

    async def stop(self, grace: float) -> None:
        """Stop scheduling; give in-flight runs `grace` seconds, then drop them unrecorded."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        pending = set(self._in_flight.values())
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("check_runs_dropped_on_stop", count=len(late), grace_seconds=grace)

    async def _run(self, check: Check) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight[check.name] = task
        try:
            previous = self._after.pop(check.name, None)
            if previous is not None:
                await asyncio.wait({previous})
            outcome = await run_check(check, self._ctx)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            return  # dropped by stop(): not an outcome of the check
        finally:
            self._in_flight.pop(check.name, None)
        self._board.record(outcome)

    def _on_event(self, event: JobEvent) -> None:
        # EVENT_JOB_MAX_INSTANCES arrives as a JobSubmissionEvent too: dispatch on the code.
        if event.code == EVENT_JOB_SUBMITTED and isinstance(event, JobSubmissionEvent):
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
            self._metrics.overlapped.labels(event.job_id).inc()
            log.warning("check_run_overlapped", check=event.job_id)
