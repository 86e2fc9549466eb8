"""Moments of the FX week derived from today, for tests: never an absolute date.

A date written into a test is a time bomb (issue 19: a fixed FAKETIME date failed every day once
the stack's data lay in its future). These give "the next Sunday open", "the next Dec 25 noon",
"the next Saturday noon", the next ordinary week, the next Sunday on which New York moves its
clocks, in New York time from the real date (tests/unit/test_hygiene.py rejects fixed fake
dates), and `SharedClock` puts several processes on one libfaketime clock (TESTING.md: under a
speed-up each process's clock runs from its own start, so each needs the offset computed at its
own launch).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from quantops_exporter.market import DEFAULT_CLOSURES, Calendar, Closure, FxCalendar
from quantops_exporter.simulator.fakeclock import faketime_env

NEW_YORK = ZoneInfo("America/New_York")
MONDAY, WEDNESDAY, FRIDAY, SATURDAY, SUNDAY = 0, 2, 4, 5, 6  # datetime.weekday()
OPEN = time(17)  # the FX market opens and closes at 17:00 New York


def default_calendar() -> FxCalendar:
    """The daemon's default calendar: FX hours closed on QUANTOPS_MARKET_CLOSURES' default."""
    return FxCalendar(Closure.parse(text) for text in DEFAULT_CLOSURES)


def now_in_new_york() -> datetime:
    """The real time now, in New York."""
    return datetime.now(NEW_YORK)


def next_weekday(weekday: int, at: time, *, after: datetime | None = None) -> datetime:
    """The first `weekday` (Monday 0 … Sunday 6) at `at` New York strictly after `after`
    (default: now)."""
    after = after or now_in_new_york()
    day = after.astimezone(NEW_YORK).date()
    while True:
        moment = datetime.combine(day, at, NEW_YORK)
        if day.weekday() == weekday and moment > after:
            return moment
        day += timedelta(days=1)


def next_yearly(month: int, day: int, at: time, *, after: datetime | None = None) -> datetime:
    """The first `month`-`day` at `at` New York strictly after `after` (default: now)."""
    after = after or now_in_new_york()
    year = after.astimezone(NEW_YORK).year
    while (moment := datetime.combine(datetime(year, month, day).date(), at, NEW_YORK)) <= after:
        year += 1
    return moment


def next_saturday_noon(*, after: datetime | None = None) -> datetime:
    """The next Saturday 12:00 New York: the market closed for the weekend."""
    return next_weekday(SATURDAY, time(12), after=after)


def next_dec_25_noon(*, after: datetime | None = None) -> datetime:
    """The next Dec 25 12:00 New York: closed for the holiday (any weekday, year by year)."""
    return next_yearly(12, 25, time(12), after=after)


def next_jan_1_noon(*, after: datetime | None = None) -> datetime:
    """The next Jan 1 12:00 New York: closed for the holiday."""
    return next_yearly(1, 1, time(12), after=after)


def next_sunday_open(
    *, after: datetime | None = None, calendar: Calendar | None = None
) -> datetime:
    """The next Sunday 17:00 New York at which the market opens (by `calendar`, default the
    daemon's): a Sunday before a closed Monday (Jan 1) does not open and is passed over."""
    calendar = calendar or default_calendar()
    moment = next_weekday(SUNDAY, OPEN, after=after)
    while calendar.next_open(moment.timestamp() - 1) != moment.timestamp():
        moment = next_weekday(SUNDAY, OPEN, after=moment)
    return moment


def next_open_after(moment: datetime, *, calendar: Calendar | None = None) -> datetime:
    """When the market next opens after `moment` (by `calendar`, default the daemon's): after a
    holiday that is 17:00 on the holiday itself, or the Sunday after it."""
    calendar = calendar or default_calendar()
    opens = calendar.next_open(moment.timestamp())
    assert opens is not None, f"no open after {moment}"
    return datetime.fromtimestamp(opens, NEW_YORK)


class SharedClock:
    """One fake clock for several processes: it read `start` when created and runs `speed`
    times as fast as real time; `env()` is libfaketime's settings for a process launched now
    so that it reads this clock too."""

    def __init__(
        self, start: datetime, speed: float = 1.0, real: Callable[[], float] = _time.time
    ) -> None:
        self.start, self.speed, self._real = start.timestamp(), speed, real
        self._origin = real()

    def now(self) -> float:
        """The fake time now (epoch seconds)."""
        return self.start + self.speed * (self._real() - self._origin)

    def env(self) -> dict[str, str]:
        """FAKETIME (and FAKETIME_DONT_FAKE_MONOTONIC at speed 1) for a process launched now;
        LD_PRELOAD is the caller's (which libfaketime build suits the process)."""
        real = self._real()
        return faketime_env(self.start + self.speed * (real - self._origin), self.speed, real)

    def real_seconds(self, fake: float) -> float:
        """How many real seconds `fake` seconds of this clock take."""
        return fake / self.speed

    def real_until(self, moment: float) -> float:
        """Real seconds from now until this clock reads `moment` (negative once it has)."""
        return (moment - self.now()) / self.speed


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at `hour:minute` New York wall time."""
    return datetime.combine(day, time(hour, minute), NEW_YORK)


def next_clock_change(*, forward: bool, after: datetime | None = None) -> date:
    """The next Sunday on which New York moves its clocks forward (March) or back (November)."""
    day = (after or now_in_new_york()).astimezone(NEW_YORK).date() + timedelta(days=1)
    while True:
        before, later = at(day - timedelta(days=1), 12).utcoffset(), at(day, 12).utcoffset()
        assert before is not None and later is not None
        if later != before and (later > before) == forward:
            return day
        day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Week:
    """An ordinary FX week: no closed trading day from the Sunday before its Monday to the
    Tuesday after it, so its Friday close and its Sunday open are the weekly ones."""

    monday: date

    def day(self, weekday: int) -> date:
        """The day of this week (its Sunday is the one after its Saturday: the open)."""
        return self.monday + timedelta(days=weekday)

    def wednesday(self, hour: int, minute: int = 0) -> datetime:
        """Wednesday at `hour:minute` New York."""
        return at(self.day(WEDNESDAY), hour, minute)

    def friday(self, hour: int, minute: int = 0) -> datetime:
        """Friday at `hour:minute` New York."""
        return at(self.day(FRIDAY), hour, minute)

    def saturday(self, hour: int, minute: int = 0) -> datetime:
        """Saturday at `hour:minute` New York."""
        return at(self.day(SATURDAY), hour, minute)

    def sunday(self, hour: int, minute: int = 0) -> datetime:
        """The Sunday that ends the week (the open) at `hour:minute` New York."""
        return at(self.day(SUNDAY), hour, minute)


def next_ordinary_week(*, after: datetime | None = None) -> Week:
    """The first week starting on a Monday after `after` (default: now) that no closure
    touches (see Week)."""
    closures = default_calendar().closures
    monday = (after or now_in_new_york()).astimezone(NEW_YORK).date() + timedelta(days=1)
    while True:
        monday += timedelta(days=(MONDAY - monday.weekday()) % 7)
        days = [monday + timedelta(days=n) for n in range(-1, 9)]
        if not any(closure.covers(day) for closure in closures for day in days):
            return Week(monday)
        monday += timedelta(days=1)


def clock_at(moment: datetime, speed: float = 1.0) -> dict[str, str]:
    """libfaketime settings for one process launched now whose clock reads `moment`, running
    at `speed` (several processes on one clock: SharedClock)."""
    return SharedClock(moment, speed).env()
