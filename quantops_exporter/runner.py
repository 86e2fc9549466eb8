"""Run one check: bound it by its timeout and turn whatever happens into an Outcome.

This is the one place with a broad `except`: a bug in a check becomes `error`/`internal_error`
with a logged traceback, never a dead scheduler job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from quantops_exporter.checks.base import Check, CheckContext, Outcome
from quantops_exporter.checks.verdict import (
    Reason,
    Status,
    Unreadable,
    Verdict,
    reason_for,
    unreadable_of,
)
from quantops_exporter.humanize import format_duration
from quantops_exporter.market import closure_summary
from quantops_exporter.redact import redact
from quantops_exporter.sources import errors
from quantops_exporter.sources.health import Dependency
from quantops_exporter.trace import awaiting

log = structlog.get_logger("quantops_exporter.runner")


async def run_check(
    check: Check, ctx: CheckContext, *, perf: Callable[[], float] = time.perf_counter
) -> Outcome:
    """Run `check` once within its timeout; never raises (except on cancellation)."""
    started_at = ctx.clock()
    if check.market_hours_only and not ctx.calendar.is_open(started_at):
        verdict = Verdict(
            Status.SKIPPED,
            Reason.MARKET_CLOSED,
            f"{closure_summary(ctx.calendar, started_at)}: not expected to be fresh",
        )
        return _stamp(check, verdict, started_at, 0.0, expected=False)
    warming = _warming_up(check, ctx, started_at)
    began = perf()
    verdict = await _judge(check, ctx)
    duration = perf() - began
    if warming is not None and verdict.status is not Status.OK:
        verdict = replace(verdict, summary=f"{warming}: {verdict.summary}")
    return _stamp(check, verdict, started_at, duration, expected=warming is None)


def _warming_up(check: Check, ctx: CheckContext, at: float) -> str | None:
    """Why `check` is not expected yet at `at`, when the market opened less than
    QUANTOPS_PREOPEN_READY_WITHIN_SECONDS ago and its writers are still resuming; else None.

    The market-hours checks judge data the stack's writers produce only while the market is
    open: after the weekly (or a holiday's) open they first read the close's data, and writers
    take a while to resume (runbook Weekend §2, Pre-Open Spin-Up). They run and show what they
    see, but are not expected (no page) until the warm-up ends; then SepRunbookPreOpenNotReady
    pages if the Pre-Open Spin-Up is still not green.
    """
    if not check.market_hours_only:
        return None
    opened = ctx.calendar.last_open(at)
    grace = ctx.thresholds.preopen_ready_within_seconds
    if opened is None or at - opened >= grace:
        return None
    return f"warming up after the open (not expected for {format_duration(opened + grace - at)})"


async def _judge(check: Check, ctx: CheckContext) -> Verdict:
    """The check's verdict within its timeout; a timeout or an exception becomes one."""
    with awaiting() as pending:
        try:
            async with asyncio.timeout(check.timeout):
                return await check.run(ctx)
        except TimeoutError:
            # Name what did not answer: "from GET http://api/x" tells the operator where to look.
            names = dict.fromkeys(w.what for w in pending)
            what = f" from {', '.join(names)}" if names else ""
            return Verdict(
                Status.ERROR,
                Reason.TIMEOUT,
                f"no answer{what} within the {check.timeout:g}s timeout",
                unreadable=tuple(
                    dict.fromkeys(
                        Unreadable(Dependency(w.dependency), w.item, Reason.TIMEOUT)
                        for w in pending
                        if w.dependency
                    )
                ),
            )
        except Exception as raised:
            err = _leaf(raised)
            if isinstance(err, errors.SourceError):
                return Verdict(
                    Status.ERROR, reason_for(err), _one_line(err), unreadable=unreadable_of(err)
                )
            log.error("check_crashed", check=check.name, exc_info=err)
            return Verdict(
                Status.ERROR,
                Reason.INTERNAL_ERROR,
                f"internal error: {type(err).__name__}: {_one_line(err)}",
            )


def _leaf(err: BaseException) -> BaseException:
    """The first leaf of a (possibly nested) exception group, e.g. from a TaskGroup."""
    while isinstance(err, BaseExceptionGroup):
        err = err.exceptions[0]
    return err


def _one_line(err: BaseException) -> str:
    return redact(" ".join(str(err).split()))[:300] or type(err).__name__


def _stamp(
    check: Check, verdict: Verdict, started_at: float, duration: float, *, expected: bool
) -> Outcome:
    return Outcome(
        check=check.name,
        verdict=verdict,
        started_at=started_at,
        duration=duration,
        # A check that skipped itself (e.g. no intended session open) is not expected either.
        expected=expected and verdict.status is not Status.SKIPPED,
    )
