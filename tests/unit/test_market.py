"""The FX calendar: the weekly close in New York time, sessions across DST changes, and the next
open and close (DST and holidays included)."""

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
    TransitionCache,
    Transitions,
    transitions,
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


# -- the next open and close ------------------------------------------------------------------

HOLIDAYS = FxCalendar(Closure.parse(text) for text in DEFAULT_CLOSURES)


def shown(moment: float | None) -> str | None:
    """A transition as a New York wall time with its UTC offset, for readable failures."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, NY).strftime("%a %Y-%m-%d %H:%M %z")


def test_a_friday_afternoon_closes_at_five_and_reopens_on_sunday() -> None:
    """Friday 14:00 New York: the next close is that day 17:00, the next open Sunday 17:00, and
    the last open was the Sunday before."""
    friday = ny("2026-01-09 14:00")
    assert shown(cal.next_close(friday)) == "Fri 2026-01-09 17:00 -0500"
    assert shown(cal.next_open(friday)) == "Sun 2026-01-11 17:00 -0500"
    assert shown(cal.last_open(friday)) == "Sun 2026-01-04 17:00 -0500"


def test_transitions_are_strictly_after_and_the_open_at_or_before() -> None:
    """At the very second of the open, the next open is a week on and the last open is now; at
    the second of the close, the next close is a week on."""
    sunday = ny("2026-01-11 17:00")
    assert cal.last_open(sunday) == sunday
    assert shown(cal.next_open(sunday)) == "Sun 2026-01-18 17:00 -0500"
    friday = ny("2026-01-16 17:00")
    assert shown(cal.next_close(friday)) == "Fri 2026-01-23 17:00 -0500"
    assert cal.last_open(friday) == sunday
    assert cal.last_open(sunday - 1) == ny("2026-01-04 17:00")


@pytest.mark.parametrize(
    ("moment", "next_open", "next_close", "last_open"),
    [
        # US clocks spring forward on Sunday 2026-03-08: the open is 17:00 EDT (21:00 UTC), the
        # Friday close before it 17:00 EST (22:00 UTC): an hour apart in UTC, both 17:00 local.
        (
            "2026-03-06 14:00",
            "Sun 2026-03-08 17:00 -0400",
            "Fri 2026-03-06 17:00 -0500",
            "Sun 2026-03-01 17:00 -0500",
        ),
        (
            "2026-03-08 16:59",
            "Sun 2026-03-08 17:00 -0400",
            "Fri 2026-03-13 17:00 -0400",
            "Sun 2026-03-01 17:00 -0500",
        ),
        # ... and fall back on Sunday 2026-11-01.
        (
            "2026-10-30 14:00",
            "Sun 2026-11-01 17:00 -0500",
            "Fri 2026-10-30 17:00 -0400",
            "Sun 2026-10-25 17:00 -0400",
        ),
        (
            "2026-11-01 01:30",  # the hour that happens twice
            "Sun 2026-11-01 17:00 -0500",
            "Fri 2026-11-06 17:00 -0500",
            "Sun 2026-10-25 17:00 -0400",
        ),
    ],
)
def test_transitions_stay_at_five_in_new_york_across_dst(
    moment: str, next_open: str, next_close: str, last_open: str
) -> None:
    """Both DST changes fall on a Sunday before the open: every transition stays 17:00 New York,
    never 17:00 of the other offset."""
    at_ = ny(moment)
    assert (shown(cal.next_open(at_)), shown(cal.next_close(at_)), shown(cal.last_open(at_))) == (
        next_open,
        next_close,
        last_open,
    )
    opened = cal.next_open(at_)
    assert opened is not None
    assert cal.is_open(opened) and not cal.is_open(opened - 1)


@pytest.mark.parametrize(
    ("moment", "next_open", "next_close"),
    [
        # Christmas 2026 is a Friday: the week closes Thursday Dec 24 17:00, not Friday.
        ("2026-12-23 12:00", "Sun 2026-12-27 17:00 -0500", "Thu 2026-12-24 17:00 -0500"),
        # Closed from Thursday 17:00: the next open skips Friday's and is Sunday's.
        ("2026-12-24 18:00", "Sun 2026-12-27 17:00 -0500", "Thu 2026-12-31 17:00 -0500"),
        # New Year's Day 2027 is a Friday too: closed from Thursday Dec 31 17:00 to Sunday.
        ("2027-01-01 12:00", "Sun 2027-01-03 17:00 -0500", "Fri 2027-01-08 17:00 -0500"),
    ],
)
def test_holiday_closures_close_early_and_skip_an_open(
    moment: str, next_open: str, next_close: str
) -> None:
    """Dec 25 and Jan 1 (the defaults) move the close a day earlier and leave no open until the
    Sunday after."""
    at_ = ny(moment)
    assert shown(HOLIDAYS.next_open(at_)) == next_open
    assert shown(HOLIDAYS.next_close(at_)) == next_close


def test_a_closed_weekday_skips_that_days_open() -> None:
    """A Wednesday closed (2027-04-07): the market closes Tuesday 17:00 and reopens Wednesday
    17:00, so the open after Tuesday's close is a day later, not at once."""
    calendar = FxCalendar([Closure.parse("2027-04-07")])
    tuesday = ny("2027-04-06 12:00")
    assert shown(calendar.next_close(tuesday)) == "Tue 2027-04-06 17:00 -0400"
    assert shown(calendar.next_open(tuesday)) == "Wed 2027-04-07 17:00 -0400"
    assert shown(calendar.last_open(ny("2027-04-08 12:00"))) == "Wed 2027-04-07 17:00 -0400"


def test_always_open_has_no_transitions() -> None:
    """`always` never opens or closes: None for each, and transitions() says so."""
    always = AlwaysOpenCalendar()
    saturday = at(2026, 1, 10, 12, 0)
    assert (always.next_open(saturday), always.next_close(saturday)) == (None, None)
    assert always.last_open(saturday) is None
    assert transitions(always, saturday) == Transitions(None, None, None)


def test_a_calendar_closed_past_the_search_has_no_next_open() -> None:
    """Closed for more than SEARCH_DAYS: None, not a search without end."""
    calendar = FxCalendar([Closure.parse("2026-01-01..2028-12-31")])
    assert calendar.next_open(ny("2026-06-01 12:00")) is None
    assert calendar.next_close(ny("2026-06-01 12:00")) is None


def test_the_cache_searches_again_only_when_a_transition_passes() -> None:
    """TransitionCache answers from memory until the next transition, then moves on; a clock
    that steps back, or a new calendar (a reload), searches again."""
    searches: list[float] = []

    class Counting(FxCalendar):
        def next_open(self, at: float) -> float | None:
            searches.append(at)
            return super().next_open(at)

    calendar: FxCalendar = Counting()
    now = [ny("2026-01-09 14:00")]
    cache = TransitionCache(lambda: calendar, lambda: now[0])
    first = cache()
    now[0] += 3600  # 15:00: still before the close
    assert cache() is first and len(searches) == 1
    now[0] = ny("2026-01-09 17:00")  # the close
    closed = cache()
    assert closed.next_close == ny("2026-01-16 17:00") and len(searches) == 2
    now[0] = ny("2026-01-09 16:00")  # the clock stepped back an hour
    assert cache() == first and len(searches) == 3
    calendar = Counting()
    cache()
    assert len(searches) == 4
