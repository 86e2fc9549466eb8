"""promtool cases for the week, as the daemon exports it: the warm-up after an open and a
holiday (synthetic series, faithful to tests/e2e/test_week_replay.py, which replays the real
daemon and the simulator's `week` schedule under libfaketime).

- **Warm-up** (`warm-up: …`, QUANTOPS_PREOPEN_READY_WITHIN_SECONDS after an open, `market()`
  with the open at t=0): the whole exposition of the replay's Sunday open (manifolds missing,
  the close's signals and candles, too few eligible, the kill switch ON, the Pre-Open Spin-Up
  red) raises no alert; each market-hours check's alert stays silent while its check fails on
  every run of the warm-up (not expected), and pages its `for:` after the warm-up, not before,
  if the check still fails; CandlesIncomplete outlasts the close's candle. What is judged from
  the open fires then by design, as at any hour: the other checks' alerts, the kill switch's
  on a mismatch, CheckStuck (kill switch), CannotRead, DependencyDown and DependencyFlapping,
  SchedulerMissingRuns, ExporterDown and ExporterAbsent; a market-hours check stopped at the
  open is a CheckNotRunning ticket, and PreOpenNotReady names it after the warm-up.
- **Holiday** (`holiday …`, the default closures, timestamps from the daemon's calendar): the
  whole exposition at rest on Jan 1 (a closure that ends mid-week) and on Dec 25 (one that runs
  into the weekend) raises no alert, with the candles' timestamp hours old (the safety net
  would fire if it ignored the market) and the Pre-Open Spin-Up red; each market-hours check's
  alert stays silent while its check skips itself. What is judged at all hours fires then by
  design: the other checks' alerts (the kill switch OFF while closed), CheckStuck (kill switch),
  FreshnessTimestampStale (candles stopped: this exporter is stuck), CannotRead, the
  dependencies', the scheduler's and the exporter's.

A rule that fired on what the daemon exports at rest, in a warm-up or on a holiday would fail
here; tests/deploy/test_artifacts.py keeps a warm-up and a holiday case for every alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from math import ceil
from typing import Any
from zoneinfo import ZoneInfo

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECKS, Section, section_checks
from quantops_exporter.checks.diagnosis import PROCEDURE, Step
from quantops_exporter.checks.freshness import freshness_limits
from quantops_exporter.checks.kill_switch import KILL_SWITCH_PATH
from quantops_exporter.checks.thresholds import PREOPEN_READY_WITHIN_SECONDS, Thresholds
from quantops_exporter.deploykit.rule_tests import (
    FAULT_REASON,
    FLAT,
    INSTANCE,
    MISSED,
    OVERLAPPING,
    PAIRS,
    PREOPEN,
    SPAN,
    WEEK,
    ZERO,
    Series,
    _alert,
    _at,
    _cannot_read_one,
    _check,
    _quiet,
    _running,
    _series,
    _settled,
    _stamps,
    _stuck,
    _test,
    check_state,
    closed_skip,
    dependencies_up,
    expected_absent,
    expected_check_alert,
    expected_down,
    expected_exporter_down,
    expected_flapping,
    expected_freshness,
    expected_missing_runs,
    expected_not_running,
    expected_preopen,
    expected_stuck,
    exporter_target,
    first_read,
    market,
    pre_open,
)
from quantops_exporter.deploykit.rules import (
    ALERTS,
    PREFIX,
    cannot_read_for,
    duration,
    for_duration,
    seconds_of,
)
from quantops_exporter.market import DEFAULT_CLOSURES, Closure, FxCalendar, transitions
from quantops_exporter.sources.health import Dependency

# The week: the warm-up after an open and a holiday, as the daemon exports them. The cases
# below are synthetic but follow tests/e2e/test_week_replay.py, which runs the real daemon and
# the simulator's `week` schedule (quantops_exporter/simulator/week.py) under libfaketime.
WARM_UP = int(PREOPEN_READY_WITHIN_SECONDS)  # after an open, the market-hours checks' grace
FOREVER = (SPAN + 1) * 60  # longer than any case: a fault that never clears
SELF_SKIPPING = ("sessions_open",)  # skips itself while closed and outside intended sessions
CLOSE_BEFORE_OPEN = -2 * 86_400  # the weekly close, two days before a Sunday open at t=0
# How long after an open each check fails reading what the writers left at the close, and why,
# as the replay's lived Sunday open exported it (the others pass from the open).
WARM_UP_FAULTS: Mapping[str, tuple[int, str]] = {
    # ws:last:manifold:* expired over the weekend; the ws-hydrator writes again after 45 s
    "manifold_freshness": (60, "missing"),
    # the close's last insert until signals are indexed again, 120 s after the open
    "signal_freshness": (180, "stale"),
    # count_1h starts again: eligible after three evaluator cycles with signals
    "gates_eligible": (240, "threshold"),
    # (candles passes: its age counts from the open until the first M1 candle after it)
}
# The freshness limits by source, as /metrics exports them (the defaults).
LIMITS: Mapping[str, float] = {
    source.value: limit for source, limit in freshness_limits(Thresholds()).items()
}
NEW_YORK = ZoneInfo("America/New_York")
CALENDAR = FxCalendar(Closure.parse(text) for text in DEFAULT_CLOSURES)


def _minutes(seconds: int) -> int:
    """The one-minute samples from t=0 that come before `seconds` (at most SPAN + 1)."""
    return min(SPAN + 1, max(0, ceil(seconds / 60)))


def _until(seconds: int, before: str = "1", after: str = "0") -> str:
    """Samples a minute apart from t=0: `before` while earlier than `seconds`, then `after`."""
    first = _minutes(seconds)
    parts = [f"{before}x{first - 1}"] if first else []
    if first <= SPAN:
        parts.append(f"{after}x{SPAN - first}")
    return " ".join(parts)


def _written_from(seconds: int, frozen: str, lag: int = 10) -> str:
    """A freshness timestamp a minute apart from t=0: `frozen` (the close's, or `_` for a key
    that expired) until its writer resumes at `seconds`, then `lag` seconds behind the clock."""
    first = _minutes(seconds)
    parts = [f"{frozen}x{first - 1}"] if first else []
    if first <= SPAN:
        parts.append(f"{first * 60 - lag}+60x{SPAN - first}")
    return " ".join(parts)


def _stamp(
    source: str, values: str, instrument: str = "EUR_USD", instance: str = INSTANCE
) -> Series:
    """One instrument's freshness timestamp as `values`."""
    return _series(
        "runbook_freshness_last_update_timestamp_seconds",
        values,
        instance,
        source=source,
        instrument=instrument,
    )


def warming(
    check: Check, fails_for: int = 0, reason: str = "stale", instance: str = INSTANCE
) -> list[Series]:
    """One check as the daemon exports it from a market open at t=0, run on its cadence: it
    fails for its first `fails_for` seconds (reading what the writers left at the close), then
    passes. A market-hours check is not expected during the warm-up (runner._warming_up: it
    runs and shows what it reads, with runbook_check_expected 0); any other from the open."""
    expected = _until(WARM_UP, "0", "1") if check.market_hours_only else FLAT
    state = check_state(
        check, _until(fails_for), reason=reason, expected=expected, instance=instance
    )
    return state + _running(check, instance)


def at_rest(check: Check, instance: str = INSTANCE) -> list[Series]:
    """One check as the daemon exports it while the market is closed (a weekend, a holiday),
    run on its cadence: a market-hours check (and sessions_open) skips itself, `market_closed`,
    not expected; any other passes, the stack at rest being what it judges then (the kill
    switch ON, positions flat, candles complete, their age not judged while closed)."""
    if check.market_hours_only or check.name in SELF_SKIPPING:
        state = closed_skip(check, instance)
    else:
        state = check_state(check, ZERO, reason="none", instance=instance)
    return state + _running(check, instance)


def exposition(
    check_series: Callable[[Check], list[Series]],
    market_series: list[Series],
    section: str,
    stamps: list[Series],
    instance: str = INSTANCE,
) -> list[Series]:
    """Every series the rules read, as one exporter exports them: each check's
    (`check_series`), the market's timestamps, the Pre-Open Spin-Up's runbook_section_ok as
    `section`, the freshness timestamps (`stamps`) and limits, every dependency answering, no
    diagnosis step failing, the scheduler's counters standing still, and Prometheus's `up`."""
    series = [s for check in CHECKS for s in check_series(check)]
    series += market_series + pre_open(section, instance) + stamps
    series += [
        _series("runbook_freshness_max_age_seconds", f"{limit:g}x{SPAN}", instance, source=source)
        for source, limit in LIMITS.items()
    ]
    series += dependencies_up(Dependency, instance=instance)
    series += [
        _series("runbook_diagnosis_step", ZERO, instance, procedure=PROCEDURE, step=step.value)
        for step in Step
    ]
    series += [
        _series(counter, ZERO, instance, check=check.name)
        for check in CHECKS
        for counter in (MISSED, OVERLAPPING)
    ]
    return [*series, *exporter_target(FLAT, instance)]


def warm_up(
    faults: Mapping[str, tuple[int, str]] = WARM_UP_FAULTS, instance: str = INSTANCE
) -> list[Series]:
    """Every series the rules read from a market open at t=0 (`market()`, so the open is two
    minutes before an evaluation at 2m) through the warm-up and after, as the replay's lived
    Sunday open exported them: each check of `faults` fails for its first seconds, the others
    pass (the kill switch among them: ON, as the runbook keeps it until the first intended
    session, is right then); sessions_open skips itself (no intended session yet); the
    Pre-Open Spin-Up is red until its checks pass; the close's signal and candle timestamps,
    two days old, and no manifold at all, until their writers resume."""

    def state(check: Check) -> list[Series]:
        if check.name in SELF_SKIPPING:
            return closed_skip(check, instance, "session_closed") + _running(check, instance)
        fails_for, reason = faults.get(check.name, (0, "none"))
        return warming(check, fails_for, reason, instance)

    def resumes(name: str) -> int:
        return faults.get(name, (0, ""))[0]

    red_for = max(resumes(c.name) for c in section_checks(CHECKS, Section.PRE_OPEN))
    close = CLOSE_BEFORE_OPEN
    stamps = [
        *[
            _stamp("ws_manifold", _written_from(resumes("manifold_freshness"), "_"), p, instance)
            for p in PAIRS
        ],
        *[
            _stamp(
                "signal_index",
                _written_from(resumes("signal_freshness"), str(close - 30), 30),
                p,
                instance,
            )
            for p in PAIRS
        ],
        _stamp(
            "gates_blob",
            _written_from(resumes("gates_blob_freshness"), str(close - 60), 0),
            "",
            instance,
        ),
        _stamp(
            "candles", _written_from(resumes("candles"), str(close - 60), 60), instance=instance
        ),
    ]
    return exposition(state, market(instance=instance), _until(red_for, "0", "1"), stamps, instance)


@dataclass(frozen=True, slots=True)
class Holiday:
    """Promtool's t=0 as a moment (New York wall time) on a trading day the default closures
    (QUANTOPS_MARKET_CLOSURES: Dec 25 and Jan 1) close; its timestamps come from the calendar
    the daemon uses."""

    name: str
    new_york: str

    @property
    def at(self) -> float:
        """The moment as Unix time."""
        return datetime.fromisoformat(self.new_york).replace(tzinfo=NEW_YORK).timestamp()

    def _since(self, moment: float | None) -> int:
        if moment is None:
            raise ValueError(f"{self.new_york}: the FX calendar has no such transition")
        return round(moment - self.at)

    @property
    def closed_for(self) -> int:
        """Seconds since the close that began the closure."""
        return -self._since(CALENDAR.next_close(CALENDAR.last_open(self.at) or self.at))

    def market(self, instance: str = INSTANCE) -> list[Series]:
        """The market's timestamps then, relative to t=0: it last opened days ago, and next
        opens at the closure's end (or at the weekly open, when the closure runs into it)."""
        known = transitions(CALENDAR, self.at)
        return [
            _series(
                f"runbook_market_{name}_timestamp_seconds", f"{self._since(moment)}{WEEK}", instance
            )
            for name, moment in (
                ("last_open", known.last_open),
                ("next_close", known.next_close),
                ("next_open", known.next_open),
            )
        ]


NEW_YEAR = Holiday("Jan 1 noon, a Thursday: reopens at 17:00", "2026-01-01T12:00:00")
CHRISTMAS = Holiday("Dec 25 noon, a Friday: reopens Sunday 17:00", "2026-12-25T12:00:00")


def on_holiday(holiday: Holiday = NEW_YEAR, instance: str = INSTANCE) -> list[Series]:
    """Every series the rules read on `holiday`, the stack at rest, as the replay's Dec 25 and
    Jan 1 exported them: the market-hours checks skip themselves (so export no timestamps), the
    others pass; the Pre-Open Spin-Up red (not verified); the candles' timestamp the close's
    last candle, hours old (far over twice its limit: the safety net would fire if it ignored
    the market); the next open at the closure's end."""
    candle = -holiday.closed_for - 60
    return exposition(
        lambda check: at_rest(check, instance),
        holiday.market(instance),
        ZERO,
        [_stamp("candles", f"{candle}x{SPAN}", instance=instance)],
        instance,
    )


def _hold(check: Check) -> int:
    """The seconds of the check alert's `for:`."""
    return seconds_of(for_duration(check, ALERTS[check.name]))


def _alerted(*, market_hours: bool) -> list[Check]:
    """The checks with an alert that run only while the market is open (or at all hours)."""
    return [c for c in CHECKS if c.name in ALERTS and c.market_hours_only is market_hours]


def warm_up_cases() -> list[dict[str, Any]]:
    """The warm-up after an open (QUANTOPS_PREOPEN_READY_WITHIN_SECONDS): the daemon's
    exposition raises nothing; a market-hours check's alert stays silent whatever the check
    reads then, and pages its `for:` after the warm-up if the check still fails; candles late
    for less than its `for:` stay silent; what is judged from the open (the other checks,
    dependencies, the exporter) fires then by design, as at any hour."""
    cases = [
        _test(
            "warm-up: no alert on the daemon's exposition from the open (freshness, eligibility "
            "and candles reading the close's data, the kill switch ON, the Pre-Open Spin-Up red "
            "until they pass)",
            warm_up(),
            _quiet((60, 120, 240, WARM_UP + 30, 600, 1200)),
        )
    ]
    for check in _alerted(market_hours=True):
        alert, reason, hold = _alert(check.name), FAULT_REASON[check.name], _hold(check)
        cases += [
            _test(
                f"warm-up: {alert} stays silent while {check.name} fails on every run of the "
                "warm-up (not expected), and after it once it passes",
                warm_up({**WARM_UP_FAULTS, check.name: (WARM_UP, reason)}),
                [_at(t, alert, []) for t in (120, WARM_UP - 15, WARM_UP + hold + 60)],
            ),
            _test(
                f"warm-up: {alert} pages {duration(hold)} after the warm-up ends, not before, "
                f"while {check.name} still fails",
                warming(check, FOREVER, reason) + dependencies_up(check.dependencies) + market(),
                [
                    _at(WARM_UP - 15, alert, []),
                    _at(WARM_UP + hold - 15, alert, []),
                    _at(WARM_UP + hold + 60, alert, [expected_check_alert(check, reason)]),
                ],
            ),
        ]
    candles = _check("candles")
    cases.append(
        _test(
            f"warm-up: {_alert(candles.name)} stays silent while the first candles after the "
            "open are late for two runs (expected from the open, shorter than its for:)",
            warm_up({**WARM_UP_FAULTS, candles.name: (120, "stale")}),
            [_at(t, _alert(candles.name), []) for t in (60, 120, 180, 240, WARM_UP + 30)],
        )
    )
    for check in _alerted(market_hours=False):
        alert, reason = _alert(check.name), FAULT_REASON[check.name]
        cases.append(
            _test(
                f"warm-up: {alert} pages during the warm-up when {check.name} fails "
                f"({reason}): judged from the open",
                check_state(check, FLAT, reason=reason)
                + dependencies_up(check.dependencies)
                + market(),
                [_at(_hold(check) + 60, alert, [expected_check_alert(check, reason)])],
            )
        )
    return cases + _warm_up_stack_cases()


def _warm_up_stack_cases() -> list[dict[str, Any]]:
    """The warm-up for the alerts that are not a check's: stuck, blind, dependencies, the
    scheduler, the exporter."""
    signal, kill_switch, manifold = (
        _check("signal_freshness"),
        _check("kill_switch"),
        _check("manifold_freshness"),
    )
    blind = seconds_of(cannot_read_for(CHECKS))
    close_stamps = f"{CLOSE_BEFORE_OPEN - 30}x{SPAN}"
    return [
        _test(
            "warm-up: signal_freshness stopped at the open with the close's timestamps: no "
            "FreshnessTimestampStale nor CheckStuck (not expected then), a CheckNotRunning "
            "ticket, and PreOpenNotReady names it after the warm-up",
            _stuck(signal, failing=FLAT, expected=ZERO, reason="stale")
            + _stamps("signal_index", LIMITS["signal_index"], PAIRS, close_stamps)
            + dependencies_up(signal.dependencies)
            + market()
            + pre_open(),
            [
                _at("20m", f"{PREFIX}FreshnessTimestampStale", []),
                _at("20m", f"{PREFIX}CheckStuck", []),
                _at("20m", _alert(signal.name), []),
                _at("10m", f"{PREFIX}CheckNotRunning", [expected_not_running(signal.name)]),
                _at(WARM_UP + 60, PREOPEN, [expected_preopen([(signal.name, "stale")])]),
            ],
        ),
        _test(
            "warm-up: CheckStuck pages when the kill switch stops during the warm-up: it is "
            "judged from the open",
            _stuck(kill_switch) + dependencies_up(kill_switch.dependencies) + market(),
            [_at(WARM_UP - 60, f"{PREFIX}CheckStuck", [expected_stuck(kill_switch.name)])],
        ),
        _test(
            "warm-up: CannotRead ignores a warming-up check's read errors, and pages its hold "
            "after the warm-up",
            check_state(
                manifold,
                FLAT,
                status="error",
                reason="bad_payload",
                expected=_until(WARM_UP, "0", "1"),
                unreadable=[first_read(manifold)],
            )
            + dependencies_up(manifold.dependencies)
            + market(),
            [
                _at(WARM_UP - 15, f"{PREFIX}CannotRead", []),
                _at(WARM_UP + blind - 15, f"{PREFIX}CannotRead", []),
                _cannot_read_one(
                    WARM_UP + blind + 60,
                    "valkey",
                    manifold.name,
                    "bad_payload",
                    first_read(manifold)[1],
                ),
            ],
        ),
        _test(
            "warm-up: CannotRead pages during the warm-up when the kill switch cannot read: it "
            "is judged from the open",
            check_state(
                kill_switch,
                FLAT,
                status="error",
                reason="http_error",
                unreadable=[first_read(kill_switch)],
            )
            + dependencies_up(kill_switch.dependencies)
            + market(),
            [_cannot_read_one(blind + 60, "api", kill_switch.name, "http_error", KILL_SWITCH_PATH)],
        ),
        _test(
            "warm-up: DependencyDown pages during the warm-up: Valkey down is an outage at any "
            "hour",
            dependencies_up([Dependency.VALKEY], ZERO) + market(),
            [_at(WARM_UP - 60, f"{PREFIX}DependencyDown", [expected_down("valkey")])],
        ),
        _test(
            "warm-up: DependencyFlapping pages during the warm-up: an API failing by turns is a "
            "fault at any hour",
            dependencies_up([Dependency.API], " ".join(["1", "0"] * 60))
            + dependencies_up([Dependency.STACK_METRICS], "1x120")
            + market(),
            [_at(WARM_UP - 60, f"{PREFIX}DependencyFlapping", [expected_flapping("api")])],
            interval="15s",
        ),
        _test(
            "warm-up: SchedulerMissingRuns tickets a run dropped during the warm-up: a "
            "scheduler fault at any hour",
            [_series(MISSED, f"0 1x{SPAN}", check=manifold.name), *market()],
            [
                _at(
                    120,
                    f"{PREFIX}SchedulerMissingRuns",
                    [expected_missing_runs(manifold.name)],
                )
            ],
        ),
        _test(
            "warm-up: ExporterDown pages during the warm-up: an exporter Prometheus cannot "
            "scrape watches no open",
            exporter_target(f"1 0x{SPAN}") + market(),
            [_at(WARM_UP - 60, f"{PREFIX}ExporterDown", [expected_exporter_down()])],
        ),
        _test(
            "warm-up: ExporterAbsent pages at an open as at any hour: without a target no "
            "warm-up is watched",
            [{"series": 'up{job="other",instance="x:1"}', "values": FLAT}],
            [_at(WARM_UP + 60, f"{PREFIX}ExporterAbsent", [expected_absent()])],
        ),
    ]


def holiday_cases() -> list[dict[str, Any]]:
    """A holiday (the default closures): the daemon's exposition at rest raises nothing, on a
    closure that ends mid-week and on one that runs into the weekend; a market-hours check's
    alert stays silent (it skips itself); the safety net and PreOpenNotReady stay silent on
    hours-old timestamps and a red section; what is judged at all hours (the other checks,
    dependencies, the exporter) fires then by design."""
    cases = [
        _test(
            f"holiday ({holiday.name}): no alert on the daemon's exposition at rest "
            "(market-hours checks skipped, the candles' timestamp "
            f"{holiday.closed_for // 3600} h old, the kill switch ON, the Pre-Open Spin-Up red)",
            on_holiday(holiday),
            _quiet((60, 600, 1800)),
        )
        for holiday in (NEW_YEAR, CHRISTMAS)
    ]
    closed = NEW_YEAR.market()
    for check in _alerted(market_hours=True):
        alert = _alert(check.name)
        cases.append(
            _test(
                f"holiday: {alert} stays silent while {check.name} skips itself "
                "(market_closed) until the closure's end",
                at_rest(check) + dependencies_up(check.dependencies) + closed,
                [_at(_settled(check), alert, [])],
            )
        )
    for check in _alerted(market_hours=False):
        alert, reason = _alert(check.name), FAULT_REASON[check.name]
        cases.append(
            _test(
                f"holiday: {alert} pages when {check.name} fails ({reason}): judged while the "
                "market is closed",
                check_state(check, FLAT, reason=reason)
                + dependencies_up(check.dependencies)
                + closed,
                [_at(_hold(check) + 60, alert, [expected_check_alert(check, reason)])],
            )
        )
    return cases + _holiday_stack_cases(closed)


def _holiday_stack_cases(closed: list[Series]) -> list[dict[str, Any]]:
    """A holiday for the kill switch left OFF, the safety net, PreOpenNotReady, and the alerts
    that are not a check's: stuck, blind, dependencies, the scheduler, the exporter."""
    kill_switch, candles, manifold, topk = (
        _check("kill_switch"),
        _check("candles"),
        _check("manifold_freshness"),
        _check("allocator_topk"),
    )
    candle = f"{-NEW_YEAR.closed_for - 60}x{SPAN}"
    hours = NEW_YEAR.closed_for // 3600
    blind = seconds_of(cannot_read_for(CHECKS))
    halted = [  # a market-hours check that stopped while skipping
        _series("runbook_check_last_run_timestamp_seconds", ZERO, check=manifold.name),
        _series(
            "runbook_check_interval_seconds", f"{manifold.interval:g}x{SPAN}", check=manifold.name
        ),
        *closed_skip(manifold),
    ]
    return [
        _test(
            f"holiday: {_alert(kill_switch.name)} pages when the switch is OFF: the runbook "
            "leaves it ON while the market is closed",
            check_state(kill_switch, FLAT, reason="unexpected_value")
            + dependencies_up(kill_switch.dependencies)
            + closed,
            [
                _at(
                    _hold(kill_switch) + 60,
                    _alert(kill_switch.name),
                    [expected_check_alert(kill_switch, "unexpected_value")],
                )
            ],
        ),
        _test(
            f"holiday: FreshnessTimestampStale stays silent on the candles' {hours} h old "
            "timestamp while candles runs",
            at_rest(candles) + _stamps("candles", LIMITS["candles"], ("EUR_USD",), candle) + closed,
            [_at(t, f"{PREFIX}FreshnessTimestampStale", []) for t in (600, 1200)]
            + [_at(1200, f"{PREFIX}CheckNotRunning", [])],
        ),
        _test(
            "holiday: FreshnessTimestampStale tickets when candles stops: it runs at all hours, "
            "so this exporter is stuck",
            _stuck(candles) + _stamps("candles", LIMITS["candles"], ("EUR_USD",), candle) + closed,
            [
                _at(
                    "20m",
                    f"{PREFIX}FreshnessTimestampStale",
                    [expected_freshness("candles", candles.name, 1)],
                ),
                _at("20m", f"{PREFIX}CheckNotRunning", []),
                _at("20m", f"{PREFIX}CheckStuck", []),
            ],
        ),
        _test(
            "holiday: PreOpenNotReady stays silent with the Pre-Open Spin-Up red: the market is "
            "closed and last opened days ago",
            closed + pre_open() + closed_skip(manifold) + check_state(topk, reason="mismatch"),
            [_at(t, PREOPEN, []) for t in (WARM_UP + 60, 1800)],
        ),
        _test(
            "holiday: CannotRead ignores the skipped checks (they read nothing) and pages for the "
            "kill switch that cannot read",
            at_rest(manifold)
            + check_state(
                kill_switch,
                FLAT,
                status="error",
                reason="http_error",
                unreadable=[first_read(kill_switch)],
            )
            + dependencies_up(Dependency)
            + closed,
            [_cannot_read_one(blind + 60, "api", kill_switch.name, "http_error", KILL_SWITCH_PATH)],
        ),
        _test(
            "holiday: DependencyDown pages: Valkey down is an outage at any hour",
            dependencies_up([Dependency.VALKEY], ZERO) + closed,
            [_at(180, f"{PREFIX}DependencyDown", [expected_down("valkey")])],
        ),
        _test(
            "holiday: DependencyFlapping pages: an API failing by turns is a fault at any hour",
            dependencies_up([Dependency.API], " ".join(["1", "0"] * 60))
            + dependencies_up([Dependency.STACK_METRICS], "1x120")
            + closed,
            [_at(240, f"{PREFIX}DependencyFlapping", [expected_flapping("api")])],
            interval="15s",
        ),
        _test(
            "holiday: CheckStuck pages when the kill switch stops (judged at all hours); a "
            "skipping check that stops is a CheckNotRunning ticket",
            _stuck(kill_switch) + halted + closed,
            [
                _at("10m", f"{PREFIX}CheckStuck", [expected_stuck(kill_switch.name)]),
                _at("10m", f"{PREFIX}CheckNotRunning", [expected_not_running(manifold.name)]),
            ],
        ),
        _test(
            "holiday: SchedulerMissingRuns tickets a dropped run: a scheduler fault at any hour",
            [_series(MISSED, f"0 1x{SPAN}", check=candles.name), *closed],
            [_at(120, f"{PREFIX}SchedulerMissingRuns", [expected_missing_runs(candles.name)])],
        ),
        _test(
            "holiday: ExporterDown pages: an exporter Prometheus cannot scrape watches nothing, "
            "the kill switch included",
            exporter_target(f"1 0x{SPAN}") + closed,
            [_at(240, f"{PREFIX}ExporterDown", [expected_exporter_down()])],
        ),
        _test(
            "holiday: ExporterAbsent pages: without a target nothing is watched, whatever the "
            "market",
            [{"series": 'up{job="other",instance="x:1"}', "values": FLAT}],
            [_at(WARM_UP + 60, f"{PREFIX}ExporterAbsent", [expected_absent()])],
        ),
    ]


def week_cases() -> list[dict[str, Any]]:
    """Every case of the week: the warm-up's, then the holidays'."""
    return warm_up_cases() + holiday_cases()
