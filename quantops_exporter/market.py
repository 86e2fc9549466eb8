"""The FX market calendar: trading sessions in their own time zones and the weekly close.

Sessions follow local business hours, so DST moves them in UTC the way the real market moves
(sep-stack-contract.md §5 gives only approximate UTC hours; local hours stay right across DST).
The weekly close is Friday 17:00 to Sunday 17:00 America/New_York, the FX convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
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


class FxCalendar:
    """The real FX week: closed from Friday 17:00 to Sunday 17:00 New York time."""

    def is_open(self, at: float) -> bool:
        """Whether the FX market is open at epoch second `at`."""
        local = datetime.fromtimestamp(at, _NEW_YORK)
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


def calendar_for(hours: MarketHours) -> Calendar:
    """The calendar QUANTOPS_MARKET_HOURS names."""
    return AlwaysOpenCalendar() if hours is MarketHours.ALWAYS else FxCalendar()
