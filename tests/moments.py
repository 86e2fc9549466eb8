"""Moments of the FX week derived from today, never written as dates.

A test that pins a date ("@2026-11-28 12:00:00") turns into a failure once that day has passed:
the stack's data, written on the real clock, then lies in the fake clock's future. Every moment
a test needs is computed here from the real date instead: the next ordinary week (no closure
from its Monday to the Sunday after), the next Sunday open, the next Dec 25, the next Sunday
on which New York moves its clocks. `tests/unit/test_hygiene.py` rejects absolute libfaketime
dates in tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from quantops_exporter.market import DEFAULT_CLOSURES, Closure
from quantops_exporter.simulator.fakeclock import faketime_env

NEW_YORK = ZoneInfo("America/New_York")
MONDAY, WEDNESDAY, FRIDAY, SATURDAY, SUNDAY = 0, 2, 4, 5, 6
HOLIDAYS = tuple(Closure.parse(text) for text in DEFAULT_CLOSURES)


def today(now: float | None = None) -> date:
    """Today's date in New York (the runbook's clock)."""
    return datetime.fromtimestamp(time.time() if now is None else now, NEW_YORK).date()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at `hour:minute` New York wall time."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


def next_weekday(
    weekday: int, hour: int, minute: int = 0, *, after: float | None = None
) -> datetime:
    """The next `weekday` (Monday is 0) at `hour:minute` New York, strictly after `after`
    (default: now)."""
    now = time.time() if after is None else after
    day = today(now)
    while True:
        moment = at(day, hour, minute)
        if day.weekday() == weekday and moment.timestamp() > now:
            return moment
        day += timedelta(days=1)


def next_date(
    month: int, day: int, hour: int, minute: int = 0, *, after: float | None = None
) -> datetime:
    """The next `month`-`day` at `hour:minute` New York, strictly after `after` (default: now)."""
    now = time.time() if after is None else after
    year = today(now).year
    while True:
        try:
            moment = at(date(year, month, day), hour, minute)
        except ValueError:  # Feb 29 outside a leap year
            year += 1
            continue
        if moment.timestamp() > now:
            return moment
        year += 1


def next_clock_change(*, forward: bool, after: float | None = None) -> date:
    """The next Sunday on which New York moves its clocks forward (March) or back (November)."""
    day = today(after) + timedelta(days=1)
    while True:
        before, later = at(day - timedelta(days=1), 12).utcoffset(), at(day, 12).utcoffset()
        assert before is not None and later is not None
        if later != before and (later > before) == forward:
            return day
        day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Week:
    """An ordinary FX week: no closed trading day from its Monday to the Sunday after it, so
    the Friday close and the Sunday open are the weekly ones."""

    monday: date

    def day(self, weekday: int) -> date:
        """The day of this week (the Sunday is the one after its Saturday)."""
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


def next_ordinary_week(*, after: float | None = None) -> Week:
    """The first week starting on a Monday after `after` (default: now) whose days, and the
    Monday after it, hold no closure (so no holiday moves its close or its open)."""
    monday = today(after) + timedelta(days=1)
    while True:
        monday += timedelta(days=(MONDAY - monday.weekday()) % 7)
        days = [monday + timedelta(days=n) for n in range(-1, 9)]
        if not any(closure.covers(day) for closure in HOLIDAYS for day in days):
            return Week(monday)
        monday += timedelta(days=1)


def next_saturday_noon(*, after: float | None = None) -> datetime:
    """The next Saturday noon New York: the market is closed all day."""
    return next_weekday(SATURDAY, 12, after=after)


def clock_at(moment: datetime, speed: int = 1, *, now: float | None = None) -> dict[str, str]:
    """libfaketime settings for a process started now whose clock reads `moment` (running at
    `speed`); only the wall clock moves at speed 1, as NTP would set it (see fakeclock)."""
    return faketime_env(moment.timestamp(), speed, time.time() if now is None else now)
