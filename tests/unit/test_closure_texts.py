"""What the summaries say while the market is closed (issue 23, item 7): the closure named from
the calendar (holiday or weekend), never the weekend's hours hard-coded; freshness that was not
judged said to be so; sessions that agree with the calendar. Moments derive from today."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from quantops_exporter.checks.allocation import check_allocator_cadence
from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.sessions import check_sessions_open
from quantops_exporter.checks.verdict import Reason, Status, Verdict
from quantops_exporter.checks.warmup import check_candles
from quantops_exporter.market import (
    AssumedOpenCalendar,
    Closure,
    FxCalendar,
    Session,
    closure_summary,
    local_sessions,
)
from quantops_exporter.runner import run_check
from tests.factories import FrozenClock, make_ctx
from tests.moments import (
    default_calendar,
    next_dec_25_noon,
    next_jan_1_noon,
    next_saturday_noon,
    next_sunday_open,
)

MARKET_HOURS = [check for check in CHECKS if check.market_hours_only]


class Http:
    """The stack's API as the candle and allocator checks read it: the newest candle and the
    allocator's last cycle `age` seconds old."""

    def __init__(self, now: float, age: float) -> None:
        self.newest = now - age

    async def get_json(self, _dependency: object, url: str, _params: object = None) -> Any:
        if url.endswith("/api/candles"):
            return {"items": [{"time": self.newest - 60 * k} for k in range(120)]}
        return {"interval": 60, "ts": self.newest}


def ctx_at(moment: datetime, age: float = 19 * 3600.0) -> CheckContext:
    """A context on the daemon's default calendar at `moment`."""
    now = moment.timestamp()
    return make_ctx(http=Http(now, age), calendar=default_calendar(), clock=FrozenClock(now))


CLOSED = {
    "the next dec 25 noon": (next_dec_25_noon, "holiday 12-25"),
    "the next jan 1 noon": (next_jan_1_noon, "holiday 01-01"),
    "the next saturday noon": (next_saturday_noon, "weekend"),
    "sunday 16:40 before the next open": (
        lambda: next_sunday_open() - timedelta(minutes=20),
        "weekend",
    ),
}


@pytest.mark.parametrize(("moment", "why"), CLOSED.values(), ids=CLOSED.keys())
async def test_every_market_hours_summary_names_the_closure_from_the_calendar(
    moment: Any, why: str
) -> None:
    """The skipped market-hours checks say which closure is in force and its stretch: the
    holiday on Dec 25 and Jan 1 (the issue saw "Fri 17:00 to Sun 17:00" on a Friday holiday),
    the weekend on a Saturday."""
    ctx = ctx_at(moment())
    for check in MARKET_HOURS:
        outcome = await run_check(check, ctx)
        assert (outcome.status, outcome.reason) == (Status.SKIPPED, Reason.MARKET_CLOSED)
        assert outcome.summary.startswith(f"FX market closed for the {why} ("), outcome.summary
        assert outcome.summary.endswith(" New York): not expected to be fresh")
        other = "weekend" if why != "weekend" else "holiday"
        assert other not in outcome.summary


@pytest.mark.parametrize(("moment", "why"), CLOSED.values(), ids=CLOSED.keys())
async def test_freshness_not_judged_while_closed_is_said_to_be_so(moment: Any, why: str) -> None:
    """`candles` said "newest fresh" for a 19-hour-old candle it did not judge; it and the
    allocator's cadence now give the age and say it was not judged, and why."""
    ctx = ctx_at(moment())
    candles = await check_candles(ctx)
    assert candles.status is Status.OK and "fresh" not in candles.summary.replace("freshness", "")
    assert f"newest 68400s old, freshness not judged: FX market closed for the {why} (" in (
        candles.summary
    )
    cadence = await check_allocator_cadence(ctx)
    assert f"its last cycle's age not judged: FX market closed for the {why}" in cadence.summary


async def test_while_open_the_freshness_is_judged_and_said_fresh() -> None:
    """Mid-week a fresh candle is "newest fresh" and a stale one fails, as before."""
    wednesday = next_sunday_open() + timedelta(days=2, hours=17)
    assert "newest fresh" in (await check_candles(ctx_at(wednesday, age=30))).summary
    stale: Verdict = await check_candles(ctx_at(wednesday))
    assert (stale.status, stale.reason) == (Status.FAIL, Reason.STALE)


def test_a_closure_range_and_a_weekend_after_a_holiday_are_named_as_they_are() -> None:
    """A configured range names itself; the Saturday after a Friday holiday is the weekend,
    with the whole closed stretch (it began with the holiday)."""
    dec_25 = next_dec_25_noon()
    first = dec_25.date()
    text = f"{first.isoformat()}..{(first + timedelta(days=7)).isoformat()}"
    calendar = FxCalendar([Closure.parse(text)])
    assert f"for the holiday {text} (" in closure_summary(calendar, dec_25.timestamp())
    friday = next_dec_25_noon()
    while friday.weekday() != 4:  # the next Dec 25 that is a Friday
        friday = friday.replace(year=friday.year + 1)
    saturday = (friday + timedelta(days=1)).timestamp()
    assert closure_summary(default_calendar(), saturday) == (
        "FX market closed for the weekend (Thu 17:00 to Sun 17:00 New York)"
    )


async def test_sessions_agree_with_the_calendar_and_assume_open_keeps_local_hours() -> None:
    """At Sunday 16:40 (the old cron moment) and on Dec 25 no session is open by the calendar;
    `--assume-open` judges the market open but no longer counts all four sessions open (the
    issue saw four): only those within their local hours, Sydney's Monday morning at most."""
    for moment in (next_sunday_open() - timedelta(minutes=20), next_dec_25_noon()):
        now = moment.timestamp()
        assert default_calendar().open_sessions(now) == frozenset()
        calendar_said = await check_sessions_open(ctx_at(moment))
        assert calendar_said.observations["open"] == []
        assumed = make_ctx(calendar=AssumedOpenCalendar(), clock=FrozenClock(now))
        verdict = await check_sessions_open(assumed)
        assert set(verdict.observations["open"]) == {s.value for s in local_sessions(now)}
        assert set(verdict.observations["open"]) < {s.value for s in Session}
    sunday = (next_sunday_open() - timedelta(minutes=20)).timestamp()
    assert local_sessions(sunday) <= {Session.SYDNEY}
