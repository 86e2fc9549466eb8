"""The FX market calendar: trading sessions in their own time zones and the weekly close.

Sessions follow local business hours, so DST moves them in UTC the way the real market moves
(sep-stack-contract.md §5 gives only approximate UTC hours; local hours stay right across DST).
The weekly close is Friday 17:00 to Sunday 17:00 America/New_York, the FX convention.

Holidays (QUANTOPS_MARKET_CLOSURES) close whole FX trading days. Trading day D runs from 17:00
New York on the day before to 17:00 on D, as the weekly close does, so closing Dec 25 closes
Dec 24 17:00 to Dec 25 17:00 New York: the stack rests as on a weekend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo


class MarketHours(StrEnum):
    """Which calendar decides whether the market is open (QUANTOPS_MARKET_HOURS)."""

    FX = "fx"
    ALWAYS = "always"


class Session(StrEnum):
    """The four FX sessions the stack trades (the `session` label)."""

    SYDNEY = "sydney"
    TOKYO = "tokyo"
    LONDON = "london"
    NEW_YORK = "new_york"


@dataclass(frozen=True, slots=True)
class SessionHours:
    """A session's local opening hours."""

    session: Session
    zone: ZoneInfo
    opens: time
    closes: time


SESSION_HOURS: tuple[SessionHours, ...] = (
    SessionHours(Session.SYDNEY, ZoneInfo("Australia/Sydney"), time(7), time(16)),
    SessionHours(Session.TOKYO, ZoneInfo("Asia/Tokyo"), time(9), time(18)),
    SessionHours(Session.LONDON, ZoneInfo("Europe/London"), time(8), time(17)),
    SessionHours(Session.NEW_YORK, ZoneInfo("America/New_York"), time(8), time(17)),
)

_NEW_YORK = ZoneInfo("America/New_York")
_WEEKLY_CLOSE = time(17)  # Friday 17:00 New York closes; Sunday 17:00 New York reopens


class Calendar(Protocol):
    """When the market is open and which sessions are trading."""

    def is_open(self, at: float) -> bool:
        """Whether the FX market is open at epoch second `at`."""
        ...

    def open_sessions(self, at: float) -> frozenset[Session]:
        """The sessions trading at epoch second `at`."""
        ...


DEFAULT_CLOSURES = ("12-25", "01-01")  # Christmas and New Year's Day: no FX liquidity


@dataclass(frozen=True, slots=True)
class Closure:
    """Closed FX trading days: `12-25` every year, `2026-12-24`, or a range
    `2026-12-24..2026-12-26` (New York dates, inclusive)."""

    first: date | tuple[int, int]  # a date, or (month, day) every year
    last: date | tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> Closure:
        """Parse one closure; ValueError says what is accepted."""
        first, _, last = text.strip().partition("..")
        try:
            start, end = _day(first), _day(last or first)
        except ValueError:
            raise ValueError(
                f"{text.strip()!r} is not a closure: use MM-DD (every year), YYYY-MM-DD or "
                "YYYY-MM-DD..YYYY-MM-DD"
            ) from None
        if type(start) is not type(end) or start > end:  # type: ignore[operator]
            raise ValueError(f"{text.strip()!r}: a range runs from an earlier to a later date")
        return cls(start, end)

    def __str__(self) -> str:
        first, last = _show(self.first), _show(self.last)
        return first if first == last else f"{first}..{last}"

    def covers(self, day: date) -> bool:
        """Whether trading day `day` is closed."""
        if isinstance(self.first, date) and isinstance(self.last, date):
            return self.first <= day <= self.last
        return self.first <= (day.month, day.day) <= self.last  # type: ignore[operator]


def _show(day: date | tuple[int, int]) -> str:
    return day.isoformat() if isinstance(day, date) else f"{day[0]:02d}-{day[1]:02d}"


def _day(text: str) -> date | tuple[int, int]:
    parts = text.strip().split("-")
    if len(parts) == 2:
        month, day = int(parts[0]), int(parts[1])
        date(2000, month, day)  # a leap year: validates Feb 29 too
        return (month, day)
    return date.fromisoformat(text.strip())


class FxCalendar:
    """The real FX week: closed from Friday 17:00 to Sunday 17:00 New York time, and on the
    trading days `closures` name."""

    def __init__(self, closures: Iterable[Closure] = ()) -> None:
        self.closures = tuple(closures)

    def is_open(self, at: float) -> bool:
        """Whether the FX market is open at epoch second `at`."""
        local = datetime.fromtimestamp(at, _NEW_YORK)
        if self.closures:
            trading_day = local.date() + timedelta(days=local.time() >= _WEEKLY_CLOSE)
            if any(closure.covers(trading_day) for closure in self.closures):
                return False
        weekday = local.weekday()  # Monday is 0
        if weekday == 5:
            return False
        if weekday == 4:
            return local.time() < _WEEKLY_CLOSE
        if weekday == 6:
            return local.time() >= _WEEKLY_CLOSE
        return True

    def open_sessions(self, at: float) -> frozenset[Session]:
        """The sessions trading at epoch second `at` (none while the market is closed)."""
        if not self.is_open(at):
            return frozenset()
        return frozenset(hours.session for hours in SESSION_HOURS if _within(hours, at))


class AlwaysOpenCalendar:
    """A market that never closes: for 24/7 stacks and deterministic tests."""

    def is_open(self, at: float) -> bool:
        """Always open."""
        return True

    def open_sessions(self, at: float) -> frozenset[Session]:
        """Every session, always."""
        return frozenset(Session)


def _within(hours: SessionHours, at: float) -> bool:
    local = datetime.fromtimestamp(at, hours.zone)
    if local.weekday() >= 5:
        return False
    return hours.opens <= local.time() < hours.closes


def calendar_for(hours: MarketHours, closures: Iterable[Closure] = ()) -> Calendar:
    """The calendar QUANTOPS_MARKET_HOURS names, closed on `closures` (FX hours only)."""
    return AlwaysOpenCalendar() if hours is MarketHours.ALWAYS else FxCalendar(closures)
