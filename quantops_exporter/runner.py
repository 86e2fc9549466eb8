"""Run one check: bound it by its timeout and turn whatever happens into an Outcome.

This is the one place with a broad `except`: a bug in a check becomes `error`/`internal_error`
with a logged traceback, never a dead scheduler job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from quantops_exporter.checks.base import Check, CheckContext, Outcome
from quantops_exporter.checks.verdict import Reason, Status, Verdict, reason_for
from quantops_exporter.redact import redact
from quantops_exporter.sources import errors
from quantops_exporter.trace import awaiting

log = structlog.get_logger("quantops_exporter.runner")


async def run_check(
    check: Check, ctx: CheckContext, *, perf: Callable[[], float] = time.perf_counter
) -> Outcome:
    """Run `check` once within its timeout; never raises (except on cancellation)."""
    started_at = ctx.clock()
    expected = not check.market_hours_only or ctx.calendar.is_open(started_at)
    if not expected:
        verdict = Verdict(
            Status.SKIPPED,
            Reason.MARKET_CLOSED,
            "FX market closed (Fri 17:00 to Sun 17:00 New York): not expected to be fresh",
        )
        return _stamp(check, verdict, started_at, 0.0, expected=False)
    began = perf()
    with awaiting() as pending:
        try:
            async with asyncio.timeout(check.timeout):
                verdict = await check.run(ctx)
        except TimeoutError:
            # Name what did not answer: "from GET http://api/x" tells the operator where to look.
            what = f" from {', '.join(dict.fromkeys(pending))}" if pending else ""
            verdict = Verdict(
                Status.ERROR,
                Reason.TIMEOUT,
                f"no answer{what} within the {check.timeout:g}s timeout",
            )
        except Exception as raised:
            err = _leaf(raised)
            if isinstance(err, errors.SourceError):
                verdict = Verdict(Status.ERROR, reason_for(err), _one_line(err))
            else:
                log.error("check_crashed", check=check.name, exc_info=err)
                verdict = Verdict(
                    Status.ERROR,
                    Reason.INTERNAL_ERROR,
                    f"internal error: {type(err).__name__}: {_one_line(err)}",
                )
    return _stamp(check, verdict, started_at, perf() - began, expected=True)


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
