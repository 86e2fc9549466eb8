"""The FX calendar: the weekly close in New York time and sessions across DST changes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from quantops_exporter.market import (
    DEFAULT_CLOSURES,
    AlwaysOpenCalendar,
    Closure,
    FxCalendar,
    Session,
)

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
cal = FxCalendar()


def at(year: int, month: int, day: int, hour: int, minute: int = 0, tz: ZoneInfo = UTC) -> float:
    """Epoch seconds of a wall-clock time in `tz`."""
    return datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (at(2026, 1, 9, 16, 59, NY), True),  # Friday, winter (EST), a minute before the close
        (at(2026, 1, 9, 17, 0, NY), False),  # Friday 17:00 New York: closed
        (at(2026, 1, 10, 12, 0, NY), False),  # Saturday
        (at(2026, 1, 11, 16, 59, NY), False),  # Sunday before the reopen
        (at(2026, 1, 11, 17, 0, NY), True),  # Sunday 17:00 New York: open
        (at(2026, 7, 10, 20, 59), True),  # Friday, summer (EDT): 16:59 New York is 20:59 UTC
        (at(2026, 7, 10, 21, 0), False),  # 17:00 EDT is 21:00 UTC
        (at(2026, 1, 9, 21, 30), True),  # in winter 21:30 UTC Friday is still 16:30 New York
        (at(2026, 1, 9, 22, 0), False),  # and 22:00 UTC is 17:00 EST
        (at(2026, 1, 13, 3, 0), True),  # a Tuesday night
    ],
)
def test_weekly_close_follows_new_york_time(when: float, is_open: bool) -> None:
    """The market closes Friday 17:00 and reopens Sunday 17:00 New York time, DST included."""
    assert cal.is_open(when) is is_open


def test_london_opens_at_eight_local_in_summer_and_winter() -> None:
    """London opens at 08:00 local: 08:00 UTC in January, 07:00 UTC in July (BST)."""
    assert Session.LONDON not in cal.open_sessions(at(2026, 1, 14, 7, 30))
    assert Session.LONDON in cal.open_sessions(at(2026, 1, 14, 8, 0))
    assert Session.LONDON in cal.open_sessions(at(2026, 7, 15, 7, 0))
    assert Session.LONDON not in cal.open_sessions(at(2026, 7, 15, 6, 59))


def test_uk_dst_switch_moves_london_by_an_hour() -> None:
    """Across the last Sunday of March (2026-03-29) London's UTC opening moves from 08 to 07."""
    assert Session.LONDON not in cal.open_sessions(at(2026, 3, 27, 7, 30))  # Fri before: GMT
    assert Session.LONDON in cal.open_sessions(at(2026, 3, 30, 7, 30))  # Mon after: BST


def test_us_and_uk_dst_gap_week() -> None:
    """In the weeks the US has switched and the UK has not, New York opens 12:00 UTC."""
    # 2026-03-16 (Monday): New York on EDT (UTC-4) since 03-08; London still GMT.
    assert Session.NEW_YORK in cal.open_sessions(at(2026, 3, 16, 12, 0))
    assert Session.NEW_YORK not in cal.open_sessions(at(2026, 3, 16, 11, 59))


def test_sessions_overlap_as_the_market_expects() -> None:
    """14:00 UTC on a winter Wednesday is London and New York together; Tokyo is closed."""
    assert cal.open_sessions(at(2026, 1, 14, 14, 0)) == {Session.LONDON, Session.NEW_YORK}


def test_sydney_and_tokyo_overnight() -> None:
    """23:00 UTC on a January Tuesday is Wednesday morning in Sydney (AEDT): Sydney is open."""
    sessions = cal.open_sessions(at(2026, 1, 13, 23, 0))
    assert Session.SYDNEY in sessions
    assert Session.TOKYO not in sessions  # 08:00 in Tokyo, an hour before its open
    assert Session.TOKYO in cal.open_sessions(at(2026, 1, 14, 0, 0))


def test_no_session_while_the_market_is_closed() -> None:
    """Saturday morning in Sydney is Friday night in New York after the close: nothing opens."""
    assert cal.open_sessions(at(2026, 1, 10, 0, 0)) == frozenset()
    assert cal.open_sessions(at(2026, 1, 11, 12, 0)) == frozenset()


def test_monday_asia_waits_for_the_weekly_reopen() -> None:
    """Sydney's Monday 07:00 (Sunday 20:00 UTC in January) is before Sunday 17:00 New York
    (22:00 UTC): the session shows only once the market reopens."""
    assert cal.open_sessions(at(2026, 1, 11, 20, 0)) == frozenset()
    assert Session.SYDNEY in cal.open_sessions(at(2026, 1, 11, 22, 0))


def test_always_open_calendar() -> None:
    """`always` treats every moment as open with every session trading."""
    always = AlwaysOpenCalendar()
    saturday = at(2026, 1, 10, 12, 0)
    assert always.is_open(saturday)
    assert always.open_sessions(saturday) == frozenset(Session)


def ny(text: str) -> float:
    """Epoch seconds of a New York wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("America/New_York")).timestamp()


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ("2026-12-24 16:59", True),  # Thursday: trading day Dec 24 still open
        ("2026-12-24 17:00", False),  # trading day Dec 25 begins: closed
        ("2026-12-25 12:00", False),
        ("2026-12-25 17:00", False),  # a Friday: 17:00 is the weekly close
        ("2026-12-31 17:00", False),  # trading day Jan 1 (a Friday) closed
        ("2027-01-01 17:00", False),  # Friday 17:00: the weekend
        ("2027-01-03 17:00", True),  # Sunday open
    ],
)
def test_default_closures_rest_the_stack_on_christmas_and_new_year(
    moment: str, open_: bool
) -> None:
    """Dec 25 and Jan 1 close their FX trading day (17:00 the day before to 17:00 New York)."""
    calendar = FxCalendar(Closure.parse(text) for text in DEFAULT_CLOSURES)
    assert calendar.is_open(ny(moment)) is open_
    if not open_:
        assert calendar.open_sessions(ny(moment)) == frozenset()
    assert FxCalendar().is_open(ny("2026-12-25 12:00"))  # without closures: a trading day


def test_a_dated_range_closes_only_those_days() -> None:
    """YYYY-MM-DD..YYYY-MM-DD closes each trading day in it, that year only."""
    calendar = FxCalendar([Closure.parse("2027-04-01..2027-04-02")])
    assert not calendar.is_open(ny("2027-04-01 10:00"))
    assert not calendar.is_open(ny("2027-04-02 10:00"))
    assert calendar.is_open(ny("2027-03-31 16:00"))
    assert FxCalendar().is_open(ny("2027-04-01 10:00"))
    assert calendar.is_open(ny("2028-04-03 10:00"))  # another year: open (a Monday)


@pytest.mark.parametrize(
    "bad", ["13-01", "2026-02-30", "12-25..2026-12-26", "2026-12-26..2026-12-24"]
)
def test_bad_closures_are_refused_with_what_is_accepted(bad: str) -> None:
    """An impossible date, a mixed or backwards range: ValueError saying the forms."""
    with pytest.raises(ValueError, match=r"is not a closure|earlier to a later"):
        Closure.parse(bad)
    assert str(Closure.parse("2026-12-24..2026-12-26")) == "2026-12-24..2026-12-26"
