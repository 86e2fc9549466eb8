"""The runbook's week, as the simulated stack lives it (the `week` schedule).

The `steady` schedule (the default of `SepSimulator`, and of `demo` with its always-open market)
writes fresh data around the clock and only flips the kill switch at the calendar's boundary.
The `week` schedule (`demo` with QUANTOPS_MARKET_HOURS=fx) follows the FX calendar the daemon
uses (market.py: the weekly close Friday 17:00 to Sunday 17:00 New York, and the closed trading
days of QUANTOPS_MARKET_CLOSURES) the way the runbook describes the stack:

before a close (the weekly one or a holiday's, both at 17:00 New York)
    ExitBeforeClose flattens every position SESSION_EXIT_MINUTES (5) before it
    (EXIT_BEFORE_CLOSE); no new entries until after the next open. The kill switch goes ON at
    the close (Weekend / Market Close).
while closed
    the writers freeze: the ws-hydrator, the signal writers, the rolling evaluator and the candle
    fetcher stop at the close, so every timestamp stays at its writer's last cycle before it;
    `ws:last:manifold:*` (EX MANIFOLD_TTL, 300 s) expires in Valkey about five minutes after
    the close and stays absent. allocator-lite keeps cycling and keeps the previous weights;
    the kill switch stays ON; positions stay flat.
after the open: the warm-up
    the rolling evaluator runs on its 60 s cadence from the open (fresh blob ts at once, but no
    instrument eligible: count_1h starts again from zero); the ws-hydrator writes its first
    manifold HYDRATOR_RESUMES (45 s) after the open, on its 10 s cycle; signals are indexed
    again SIGNALS_RESUME (120 s) after the open, on their 30 s cycle; candles come back with
    the first complete M1 candle (one minute after the open). Instruments pass the echo gate
    again once ECHO_MIN_REPETITIONS evaluator cycles (one a minute) have seen signals: four
    minutes after the open.
    The kill switch stays ON until the first intended session (QUANTOPS_EXPECTED_SESSIONS;
    Tokyo at 09:00 Tokyo on a Sunday evening) has opened and the warm-up is done, then the
    Pre-Open Spin-Up (SPIN_UP, 5 minutes) and it goes OFF (Weekend §2, Pre-Open Spin-Up);
    PortfolioManager re-enters within its 30 s reconcile (REENTRY) after that.
mid-week
    as the `steady` schedule's healthy stack (but manifolds carry their EX, rewritten each
    cycle).

Fault scenarios still apply on top (a stale manifold stays stale, an engaged switch stays ON).

A fake clock drives the simulator and the daemon together: both read `time.time()` (the
simulator through `SepSimulator.clock`), so running `demo` under libfaketime moves them both.
`quantops-exporter demo --at "2026-12-25 12:00" [--speed 10]` does it (fakeclock.py: the demo
runs itself again with the preload; the Valkey server it starts inherits it, so its TTLs run on
the same clock).
`GET /_sim/week` on the simulated backend shows the phase and every writer's last write.
`tests/e2e/test_week_replay.py` replays the week this way against the shipped alert rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from quantops_exporter.market import Calendar, Session

EXIT_BEFORE_CLOSE = 300.0  # SESSION_EXIT_MINUTES: ExitBeforeClose flattens before the close
MANIFOLD_TTL = 300.0  # ws:last:manifold:* is written with EX 300 (sep-stack-contract §1.4)
HYDRATOR_RESUMES = 45.0  # the ws-hydrator's first manifold after the open (30-60 s)
SIGNALS_RESUME = 120.0  # the first signal indexed after the open ("a couple of minutes")
ECHO_MIN_REPETITIONS = 3  # evaluator cycles with signals before the echo gate passes again
SPIN_UP = 300.0  # the Pre-Open Spin-Up (5-10 minutes) before the kill switch goes OFF
REENTRY = 30.0  # PortfolioManager reconciles every 30 s: positions reopen within it
MANIFOLD_CADENCE = 10.0
SIGNAL_CADENCE = 30.0
EVALUATOR_CADENCE = 60.0
CANDLE = 60.0
_SESSION_STEP = 900.0  # sessions open on local hours: a 15-minute search step cannot skip one
_SESSION_HORIZON = 4 * 86400.0


class Schedule(StrEnum):
    """How the simulated stack's writers follow the clock."""

    STEADY = "steady"  # fresh around the clock; the kill switch flips at the calendar boundary
    WEEK = "week"  # the runbook's week (this module's docstring)


class Phase(StrEnum):
    """Where in the runbook's week the stack is."""

    TRADING = "trading"  # writers on cadence, kill switch OFF, positions open
    EXIT_BEFORE_CLOSE = "exit_before_close"  # flattened, no adds, the close is near
    CLOSED = "closed"  # writers frozen, kill switch ON, flat
    WARM_UP = "warm_up"  # open; writers resuming, gates re-qualifying; kill switch ON
    PRE_OPEN = "pre_open"  # warmed up; kill switch ON until the intended session + spin-up


@dataclass(frozen=True, slots=True)
class WeekState:
    """What the stack's writers and operators have done by a moment (epoch seconds)."""

    phase: Phase
    market_open: bool
    manifold_at: float  # the ws-hydrator's newest write
    manifold_expires_at: float  # when that write's EX runs out
    signals_at: float  # the newest signal indexed
    blob_at: float  # the rolling evaluator's newest gates blob
    requalified: bool  # instruments pass the echo gate (count_1h >= ECHO_MIN_REPETITIONS)
    newest_candle: float  # the start of the newest complete M1 candle
    kill_switch: bool  # ops:kill_switch engaged
    flat: bool  # no position open
    opened_at: float | None = None  # the open this period began with (None while closed)
    closes_at: float | None = None  # the next close (None: never within the calendar's reach)
    kill_switch_off_at: float | None = None  # when the operator disengages it (open periods)

    def as_json(self) -> dict[str, object]:
        """For `GET /_sim/week`."""
        return asdict(self)


def _last_before(moment: float, cadence: float) -> float:
    """The last cycle of a writer on `cadence` strictly before `moment` (it stops there)."""
    return math.ceil(moment / cadence) * cadence - cadence


def _first_from(moment: float, cadence: float) -> float:
    """The first cycle of a writer on `cadence` at or after `moment` (it resumes there)."""
    return math.ceil(moment / cadence) * cadence


def _cycle(now: float, cadence: float) -> float:
    return math.floor(now / cadence) * cadence


@dataclass(frozen=True, slots=True)
class _Period:
    """One open or closed stretch of the calendar and the moments the week model needs."""

    start: float  # the open (open periods) or the close (closed ones)
    end: float | None  # the next close or open; None when the calendar finds none
    open: bool
    previous_close: float | None = None  # open periods: when the writers froze before
    first_session: float | None = None  # open periods: the first intended session's opening

    def holds(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


class WeekSchedule:
    """The `week` schedule on a calendar: `state(now)` says what the stack has done by then.

    The calendar's transitions are searched once per open or closed stretch, not per call.
    """

    def __init__(self, calendar: Calendar, intended: Iterable[Session]) -> None:
        self.calendar = calendar
        self.intended = frozenset(intended)
        self._period: _Period | None = None

    def state(self, now: float) -> WeekState:
        """The stack at `now`."""
        period = self._period
        if period is None or not period.holds(now):
            period = self._period = self._find(now)
        if period is None:  # a market that never closes: the steady stack
            return _steady(now)
        if not period.open:
            return self._closed(period, now)
        return self._open(period, now)

    def _find(self, now: float) -> _Period | None:
        calendar = self.calendar
        opened = calendar.last_open(now)
        if calendar.is_open(now):
            if opened is None:
                return None
            before = calendar.last_open(opened - 1)
            previous_close = calendar.next_close(before) if before is not None else None
            closes = calendar.next_close(now)
            return _Period(
                opened,
                closes,
                True,
                previous_close if previous_close is not None else opened - 2 * 86400,
                self._first_session(opened, closes),
            )
        closed = calendar.next_close(opened) if opened is not None else None
        return _Period(closed if closed is not None else now, calendar.next_open(now), False)

    def _first_session(self, opened: float, closes: float | None) -> float | None:
        """When an intended session first trades in the open stretch from `opened`."""
        limit = opened + _SESSION_HORIZON if closes is None else min(closes, opened + 7 * 86400)
        previous, moment = opened, opened
        while moment < limit:
            if self.calendar.open_sessions(moment) & self.intended:
                if moment == opened:
                    return opened
                low, high = previous, moment  # closed at low, open at high: narrow to 1 s
                while high - low > 1:
                    middle = math.floor((low + high) / 2)
                    if self.calendar.open_sessions(middle) & self.intended:
                        high = middle
                    else:
                        low = middle
                return float(high)
            previous, moment = moment, moment + _SESSION_STEP
        return None

    def _closed(self, period: _Period, now: float) -> WeekState:
        close = period.start
        manifold = _last_before(close, MANIFOLD_CADENCE)
        return WeekState(
            phase=Phase.CLOSED,
            market_open=False,
            manifold_at=manifold,
            manifold_expires_at=manifold + MANIFOLD_TTL,
            signals_at=_last_before(close, SIGNAL_CADENCE),
            blob_at=_last_before(close, EVALUATOR_CADENCE),
            requalified=True,  # the last blob before the close, as the evaluator left it
            newest_candle=_last_before(close, CANDLE),
            kill_switch=True,
            flat=True,
        )

    def _open(self, period: _Period, now: float) -> WeekState:
        opened = period.start
        frozen = period.previous_close if period.previous_close is not None else opened
        hydrator = _first_from(opened + HYDRATOR_RESUMES, MANIFOLD_CADENCE)
        signals = _first_from(opened + SIGNALS_RESUME, SIGNAL_CADENCE)
        evaluator = _first_from(opened, EVALUATOR_CADENCE)
        requalifies = _first_from(signals, EVALUATOR_CADENCE) + (
            (ECHO_MIN_REPETITIONS - 1) * EVALUATOR_CADENCE
        )
        first_candle = opened + CANDLE  # the first M1 candle after the open is complete
        warmed = max(hydrator, signals, evaluator, requalifies, first_candle)

        manifold = _cycle(now, MANIFOLD_CADENCE) if now >= hydrator else None
        blob = _cycle(now, EVALUATOR_CADENCE) if now >= evaluator else None
        off_at = (
            max(period.first_session, warmed) + SPIN_UP
            if period.first_session is not None
            else None
        )
        closes = period.end
        exiting = closes is not None and closes - now <= EXIT_BEFORE_CLOSE
        kill_switch = off_at is None or now < off_at
        if now < warmed:
            phase = Phase.WARM_UP
        elif kill_switch:
            phase = Phase.PRE_OPEN
        elif exiting:
            phase = Phase.EXIT_BEFORE_CLOSE
        else:
            phase = Phase.TRADING
        reentered = off_at is not None and now >= off_at + REENTRY
        manifold_at = manifold if manifold is not None else _last_before(frozen, MANIFOLD_CADENCE)
        return WeekState(
            phase=phase,
            market_open=True,
            manifold_at=manifold_at,
            manifold_expires_at=manifold_at + MANIFOLD_TTL,
            signals_at=(
                _cycle(now, SIGNAL_CADENCE)
                if now >= signals
                else _last_before(frozen, SIGNAL_CADENCE)
            ),
            blob_at=blob if blob is not None else _last_before(frozen, EVALUATOR_CADENCE),
            requalified=blob is None or blob >= requalifies,  # before the first cycle: frozen
            newest_candle=(
                _cycle(now, CANDLE) - CANDLE
                if now >= first_candle
                else _last_before(frozen, CANDLE)
            ),
            kill_switch=kill_switch,
            flat=exiting or kill_switch or not reentered,
            opened_at=opened,
            closes_at=closes,
            kill_switch_off_at=off_at,
        )


def _steady(now: float) -> WeekState:
    """A market that never closes: every writer on cadence, trading."""
    manifold = _cycle(now, MANIFOLD_CADENCE)
    return WeekState(
        phase=Phase.TRADING,
        market_open=True,
        manifold_at=manifold,
        manifold_expires_at=manifold + MANIFOLD_TTL,
        signals_at=_cycle(now, SIGNAL_CADENCE),
        blob_at=_cycle(now, EVALUATOR_CADENCE),
        requalified=True,
        newest_candle=_cycle(now, CANDLE) - CANDLE,
        kill_switch=False,
        flat=False,
    )
