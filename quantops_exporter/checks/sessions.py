"""Pre-Open Spin-Up §4: which FX sessions are open, and is an intended one among them?"""

from __future__ import annotations

from collections.abc import Collection

from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.verdict import Measure, Reading, Reason, Status, Verdict, ok
from quantops_exporter.market import Session


def judge_sessions(
    open_now: Collection[Session], expected: Collection[Session], market_open: bool
) -> Verdict:
    """ok while an intended session is open; otherwise skipped (trading is not intended now).

    It never fails: being outside the intended sessions is the calendar, not a fault. It
    exports one gauge per session for dashboards and for gating other alerts.
    """
    readings = tuple(
        Reading(Measure.SESSION_OPEN, float(s in open_now), (s.value,)) for s in Session
    )
    names = ", ".join(sorted(s.value for s in open_now)) or "none"
    observations = {
        "open": sorted(s.value for s in open_now),
        "expected": sorted(s.value for s in expected),
    }
    if any(s in expected for s in open_now):
        return ok(
            f"open sessions: {names}",
            readings=readings,
            observations=observations,
        )
    reason = Reason.MARKET_CLOSED if not market_open else Reason.SESSION_CLOSED
    return Verdict(
        Status.SKIPPED,
        reason,
        f"no intended session ({', '.join(sorted(s.value for s in expected))}) open; open: {names}",
        readings=readings,
        observations=observations,
    )


async def check_sessions_open(ctx: CheckContext) -> Verdict:
    """An intended session (QUANTOPS_EXPECTED_SESSIONS) is open now."""
    now = ctx.clock()
    return judge_sessions(
        ctx.calendar.open_sessions(now), ctx.thresholds.expected_sessions, ctx.calendar.is_open(now)
    )
