"""The FX market calendar: trading sessions in their own time zones and the weekly close.

Sessions follow local business hours, so DST moves them in UTC the way the real market moves
(sep-stack-contract.md §5 gives only approximate UTC hours; local hours stay right across DST).
The weekly close is Friday 17:00 to Sunday 17:00 America/New_York, the FX convention.

Holidays (QUANTOPS_MARKET_CLOSURES) close whole FX trading days. Trading day D runs from 17:00
New York on the day before to 17:00 on D, as the weekly close does, so closing Dec 25 closes
Dec 24 17:00 to Dec 25 17:00 New York: the stack rests as on a weekend.

So the market opens and closes only at 17:00 New York: the next open or close is the first 17:00
(by the New York date, so DST cannot shift it) whose two sides differ. `TransitionCache` keeps
them for /metrics and the status page, searching again only once one has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
# How far the FX calendar looks for the next (or last) open or close: a year of closures and more.
SEARCH_DAYS = 400


class Calendar(Protocol):
    """When the market is open and which sessions are trading."""

    def is_open(self, at: float) -> bool:
        """Whether the FX market is open at epoch second `at`."""
        ...

    def open_sessions(self, at: float) -> frozenset[Session]:
        """The sessions trading at epoch second `at`."""
        ...

    def next_open(self, at: float) -> float | None:
        """When the market next opens, strictly after `at`; None if it never does."""
        ...

    def next_close(self, at: float) -> float | None:
        """When the market next closes, strictly after `at`; None if it never does."""
        ...

    def last_open(self, at: float) -> float | None:
        """When the market last opened, at or before `at`; None if it never did (or never
        closes)."""
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
        if self.closures and self._closure(local) is not None:
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
        return local_sessions(at) if self.is_open(at) else frozenset()

    # The market opens and closes only at 17:00 New York (the weekly close and reopen, and the
    # bounds of closed trading days), so a transition is a 17:00 whose two sides differ.
    def next_open(self, at: float) -> float | None:
        """When the market next opens, strictly after `at` (within SEARCH_DAYS)."""
        return next((t for t in _five_pm(at, 1) if t > at and self._opens_at(t)), None)

    def next_close(self, at: float) -> float | None:
        """When the market next closes, strictly after `at` (within SEARCH_DAYS)."""
        return next((t for t in _five_pm(at, 1) if t > at and self._closes_at(t)), None)

    def last_open(self, at: float) -> float | None:
        """When the market last opened, at or before `at` (within SEARCH_DAYS)."""
        return next((t for t in _five_pm(at, -1) if t <= at and self._opens_at(t)), None)

    def closed_for(self, at: float) -> str | None:
        """What closes the market at `at`: `holiday 12-25` (the closure that names its trading
        day, even on a weekend), `weekend`, or None while it is open."""
        if self.is_open(at):
            return None
        named = self._closure(datetime.fromtimestamp(at, _NEW_YORK))
        return f"holiday {named}" if named is not None else "weekend"

    def _closure(self, local: datetime) -> Closure | None:
        """The closure of the trading day New York time `local` belongs to (it runs from 17:00
        the day before), if any."""
        trading_day = local.date() + timedelta(days=local.time() >= _WEEKLY_CLOSE)
        return next((c for c in self.closures if c.covers(trading_day)), None)

    def _opens_at(self, moment: float) -> bool:
        return self.is_open(moment) and not self.is_open(moment - 1)

    def _closes_at(self, moment: float) -> bool:
        return self.is_open(moment - 1) and not self.is_open(moment)


class AlwaysOpenCalendar:
    """A market that never closes: for 24/7 stacks and deterministic tests."""

    def is_open(self, at: float) -> bool:
        """Always open."""
        return True

    def open_sessions(self, at: float) -> frozenset[Session]:
        """Every session, always."""
        return frozenset(Session)

    def next_open(self, at: float) -> float | None:
        """Never: it is always open."""
        return None

    def next_close(self, at: float) -> float | None:
        """Never: it never closes."""
        return None

    def last_open(self, at: float) -> float | None:
        """Never: it did not open, it always was."""
        return None


class AssumedOpenCalendar(AlwaysOpenCalendar):
    """`check --assume-open`: the market judged as open, but its sessions still by their local
    hours (before the Sunday open that is Sydney's Monday morning, not every session)."""

    def open_sessions(self, at: float) -> frozenset[Session]:
        """The sessions within their local business hours at `at`."""
        return local_sessions(at)


def local_sessions(at: float) -> frozenset[Session]:
    """The sessions within their local business hours (weekdays) at `at`, whatever the FX
    market's weekly and holiday closures say."""
    return frozenset(hours.session for hours in SESSION_HOURS if _within(hours, at))


def closure_summary(calendar: Calendar, at: float) -> str:
    """Why the market is closed at `at`, named from the calendar, with the stretch it is
    closed for: `FX market closed for the holiday 12-25 (Thu 24 Dec 17:00 to Sun 27 Dec 17:00
    New York)`, `… for the weekend (Fri 17:00 to Sun 17:00 New York)`; a calendar that cannot
    say why gives `FX market closed`."""
    if not isinstance(calendar, FxCalendar) or (why := calendar.closed_for(at)) is None:
        return "FX market closed"
    opened = calendar.last_open(at)
    since = calendar.next_close(opened) if opened is not None else None
    until = calendar.next_open(at)
    dated = why != "weekend" or (
        since is not None and until is not None and until - since > 3 * 86_400
    )
    span = " to ".join(_new_york(t, dated) for t in (since, until) if t is not None)
    return f"FX market closed for the {why}" + (f" ({span} New York)" if span else "")


def _new_york(moment: float, dated: bool) -> str:
    """`Fri 17:00`, or `Thu 24 Dec 17:00` where the weekday alone could be ambiguous."""
    shown = "%a %d %b %H:%M" if dated else "%a %H:%M"
    return datetime.fromtimestamp(moment, _NEW_YORK).strftime(shown)


def _five_pm(at: float, step: int) -> Iterator[float]:
    """17:00 New York on each day from the New York date of `at`, forward (`step` 1) or back
    (-1), for SEARCH_DAYS days. Built from the local date, so DST changes cannot shift it."""
    day = datetime.fromtimestamp(at, _NEW_YORK).date()
    for offset in range(SEARCH_DAYS + 1):
        moment = datetime.combine(day + timedelta(days=offset * step), _WEEKLY_CLOSE, _NEW_YORK)
        yield moment.timestamp()


@dataclass(frozen=True, slots=True)
class Transitions:
    """The market's next open and close (strictly after a moment) and its last open (at or
    before it); None where the calendar has none (`always`)."""

    next_open: float | None
    next_close: float | None
    last_open: float | None

    @property
    def until(self) -> float:
        """The first transition after the moment: until then these stay true."""
        coming = [t for t in (self.next_open, self.next_close) if t is not None]
        return min(coming, default=float("inf"))


def transitions(calendar: Calendar, at: float) -> Transitions:
    """The calendar's transitions around epoch second `at`."""
    return Transitions(calendar.next_open(at), calendar.next_close(at), calendar.last_open(at))


class TransitionCache:
    """The transitions of the calendar in force, at the clock's time, searched for again only
    when one has passed, the clock went back or the calendar changed (a reload): cheap enough to
    ask on every scrape."""

    def __init__(self, calendar: Callable[[], Calendar], clock: Callable[[], float]) -> None:
        self._calendar = calendar
        self._clock = clock
        self._cached: tuple[Calendar, float, Transitions] | None = None

    def __call__(self) -> Transitions:
        """The transitions now."""
        now, calendar = self._clock(), self._calendar()
        if self._cached is not None:
            held, since, known = self._cached
            if held is calendar and since <= now < known.until:
                return known
        known = transitions(calendar, now)
        self._cached = (calendar, now, known)
        return known


def _within(hours: SessionHours, at: float) -> bool:
    local = datetime.fromtimestamp(at, hours.zone)
    if local.weekday() >= 5:
        return False
    return hours.opens <= local.time() < hours.closes


def calendar_for(hours: MarketHours, closures: Iterable[Closure] = ()) -> Calendar:
    """The calendar QUANTOPS_MARKET_HOURS names, closed on `closures` (FX hours only)."""
    return AlwaysOpenCalendar() if hours is MarketHours.ALWAYS else FxCalendar(closures)
