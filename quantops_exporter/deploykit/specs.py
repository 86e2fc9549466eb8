"""What the rules say, as data: each check's alert, the holds (one page per cause), the
thresholds of the exporter's own alerts, and the cadence arithmetic behind every `for:` and
window. deploykit/rules.py and records.py turn it into PromQL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.diagnosis import Step
from quantops_exporter.checks.verdict import Reason, Source
from quantops_exporter.deploykit.promql import SEL
from quantops_exporter.sources.health import Dependency

PREFIX = "SepRunbook"
# A check is stuck when its last run is older than this many intervals, plus the slack below.
STUCK_INTERVALS = 3
STUCK_SLACK_SECONDS = 60
FLAP_CHANGES = 4  # state changes within the flap window: down and back up at least twice
DEPENDENCY_DOWN_FOR = "1m"
DEPENDENCY_FLAPPING_FOR = "2m"
# PreOpenNotReady looks at the first hour after an open only: later, each check's own alert (and
# CheckStuck, CheckNotRunning) owns a fault, and a ticket stays a ticket.
PREOPEN_WINDOW_SECONDS = 3600
PREOPEN_RED_FOR = "1m"  # red at every scrape for this long: one slow run is not a page
# Every HTTP dependency of the stack reads Valkey: a Valkey outage explains their read errors.
BEHIND: Mapping[Dependency, tuple[Dependency, ...]] = {
    Dependency.API: (Dependency.VALKEY,),
    Dependency.STACK_METRICS: (Dependency.VALKEY,),
    Dependency.ALLOCATOR: (Dependency.VALKEY,),
}
# Which check judges each freshness source (runbook_freshness_*{source}).
FRESHNESS_CHECKS: Mapping[Source, str] = {
    Source.WS_MANIFOLD: "manifold_freshness",
    Source.SIGNAL_INDEX: "signal_freshness",
    Source.GATES_BLOB: "gates_blob_freshness",
    Source.CANDLES: "candles",
}
Server = tuple[Dependency, ...]
# The defaults' servers: the backend serves the API and its own /metrics (SEP_METRICS_URL unset).
DEFAULT_SERVERS: tuple[Server, ...] = (
    (Dependency.VALKEY,),
    (Dependency.API, Dependency.STACK_METRICS),
    (Dependency.ALLOCATOR,),
)


class Severity(StrEnum):
    """`page` wakes someone; `ticket` waits for working hours."""

    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """How one check pages: its alert name, severity (and why), summary and remedy. The
    runbook anchor is the check's own (Check.anchor). The summary is what a `fail` of the check
    means: the alert never fires on `error`."""

    alert: str
    severity: Severity
    why: str
    summary: str
    remedy: str
    value: str | None = None  # PromQL for the current value; @SEL@ selects the alert's stack
    for_: str | None = None  # overrides the cadence-derived duration
    # Fires while the market is closed too, for what the runbook's Weekend section explains:
    # its runbook_url is that section then (and in the warm-up after an open).
    weekend: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """One page per cause: the alert of `check` is held while the check `cause` fails, and (when
    given) while the no-positions diagnosis stops at `step` or `check` fails for `reason`."""

    check: str
    cause: str
    why: str
    step: Step | None = None
    reason: Reason | None = None


def _age(source: str) -> str:
    """The oldest exported timestamp's age of a freshness source, for a description."""
    return (
        f'max(time() - runbook_freshness_last_update_timestamp_seconds{{source="{source}",{SEL}}})'
    )


# Checks that never judge the stack `fail`, so an alert of their own could never fire: their
# failures are read errors, which DependencyDown and CannotRead page per dependency, or the
# calendar. Every other check has exactly one alert (tests/deploy/test_artifacts.py), and the
# fuzz test proves these never fail (tests/fuzz/test_stack_data.py).
UNALERTED: dict[str, str] = {
    "valkey_ping": "Valkey unreachable or refusing pages as SepRunbookDependencyDown "
    "(dependency valkey); an unusable answer as SepRunbookCannotRead",
    "allocator_health": "allocator-lite or the backend down pages as SepRunbookDependencyDown; "
    "an unusable answer as SepRunbookCannotRead",
    "sessions_open": "no intended session open is the calendar, not a fault: the check skips "
    "itself, and the session gauges gate other alerts",
}

ALERTS: dict[str, AlertSpec] = {
    "kill_switch": AlertSpec(
        "KillSwitch",
        Severity.PAGE,
        "trading is blocked, or the two sources of truth disagree",
        "Kill switch in an unexpected state",
        "Confirm /api/kill-switch is false and matches ops:kill_switch while the market is "
        "open (KILL_SWITCH_FORCE_ENV overrides Valkey at boot); leave it ON over the weekend.",
        weekend=True,
    ),
    "trading_mode": AlertSpec(
        "TradingNotLive",
        Severity.PAGE,
        "the stack is not trading live",
        "Trading mode is not live or OANDA is disconnected",
        "Check LIVE_TRADING_ENABLED=1 and the backend's OANDA connection.",
    ),
    "manifold_freshness": AlertSpec(
        "ManifoldStale",
        Severity.PAGE,
        "decisions are taken on stale manifolds",
        "ws:last:manifold is stale or missing",
        "Check ws-hydrator (it rewrites each key every ~10 s) and the warmup 'hydrate' step.",
        _age("ws_manifold"),
    ),
    "signal_freshness": AlertSpec(
        "SignalsStale",
        Severity.PAGE,
        "no new signals means no new entries",
        "sep:signal_index has had no insert within the limit",
        "Check manifold_generator and prime_qfh_history; the warmup primes the index on boot.",
        _age("signal_index"),
    ),
    "gates_blob_freshness": AlertSpec(
        "GatesBlobStale",
        Severity.PAGE,
        "allocator-lite holds previous weights while the blob is stale",
        "opt:rolling:gates_blob is stale or missing",
        "Check the rolling evaluator; do not force entries while the blob is stale.",
        _age("gates_blob"),
    ),
    "gates_eligible": AlertSpec(
        "TooFewEligible",
        Severity.PAGE,
        "the stack's own rule: fewer than 3 eligibles for 10 minutes pages",
        "Fewer eligible instruments than needed during active sessions",
        "Review sep_rolling_gate rows: repetitions, hazards and cooldowns per instrument.",
        "max(runbook_gates_eligible{@SEL@})",
        for_="10m",
    ),
    "gates_sanity": AlertSpec(
        "GatesInsane",
        Severity.TICKET,
        "a data-quality issue in the evaluator, not an outage",
        "Gates blob repetitions or hazards are not sane",
        "Inspect gates_blob.repetition and gates_blob.hazard against ECHO_MIN_REPETITIONS and "
        "ECHO_HAZARD_MAX.",
    ),
    "margin_utilisation": AlertSpec(
        "MarginHigh",
        Severity.PAGE,
        "at or above the limit the stack stops adding; beyond it is risk",
        "Margin utilisation at or above MARGIN_HYST_HIGH",
        "Follow the recovery procedure if it keeps rising.",
        "max(runbook_margin_utilisation_ratio{@SEL@})",
    ),
    "allocator_topk": AlertSpec(
        "TopKMismatch",
        Severity.TICKET,
        "the allocator publishes the wrong number of weights",
        "sep_allocator_selected count differs from ALLOC_TOP_K",
        "Check allocator-lite logs and ALLOC_TOP_K.",
        "max(runbook_allocator_selected{@SEL@})",
    ),
    "position_caps": AlertSpec(
        "PositionOverCap",
        Severity.PAGE,
        "a position beyond its cap is unplanned risk",
        "An open position exceeds min(budget/K, PM_MAX_PER_POS_PCT x budget)",
        "Reduce the position; review PM_MAX_PER_POS_PCT and the budget.",
        "max(runbook_position_margin_cap_ratio{@SEL@})",
    ),
    "allocator_cadence": AlertSpec(
        "AllocatorCadence",
        Severity.TICKET,
        "a wrong cadence degrades allocation, it does not stop trading",
        "allocator-lite cadence differs from ALLOC_INTERVAL_SEC or its cycle is stale",
        "Check allocator-lite's ALLOC_INTERVAL_SEC and that it is cycling.",
        "max(runbook_allocator_interval_seconds{@SEL@})",
    ),
    "span_integrity": AlertSpec(
        "SpanIntegrity",
        Severity.TICKET,
        "a data-integrity fault to investigate, trading continues",
        "sep_span_integrity_ok is not 1",
        "Investigate strict-span monotonicity violations.",
    ),
    "allocation_status": AlertSpec(
        "AllocationStatus",
        Severity.TICKET,
        "overcap pages through ExposureBeyondCap; off-Top-K is a ticket",
        "Allocation over target or off the published Top-K",
        "Compare /api/risk/allocation-status with sep_allocator_selected.",
        "max(runbook_allocation_total_ratio{@SEL@})",
    ),
    "candles": AlertSpec(
        "CandlesIncomplete",
        Severity.TICKET,
        "a warmup gap, visible before trading resumes",
        "Candles are short or stale",
        "Re-run the warmup backfill; check sep-candle-fetcher.",
    ),
    "alloc_budget": AlertSpec(
        "BudgetMissing",
        Severity.TICKET,
        "explains no positions; the diagnosis pages if it matters",
        "risk:alloc_budget is missing or not numeric",
        "Check that allocator-lite or the backend publishes the budget.",
    ),
    "allocation_weights": AlertSpec(
        "WeightsMissing",
        Severity.TICKET,
        "explains no positions; the diagnosis pages if it matters",
        "risk:allocation_weights is missing or empty",
        "Check allocator-lite logs.",
    ),
    "spread_guard": AlertSpec(
        "SpreadsWide",
        Severity.TICKET,
        "a market condition the stack guards itself against",
        "Spreads above MAX_SPREAD_BPS",
        "Expect the spread guard to block adds until spreads "
        "narrow; review MAX_SPREAD_BPS only if it persists.",
        "max(runbook_spread_bps{@SEL@})",
    ),
    "no_positions_diagnosis": AlertSpec(
        "FlatWhileGatesGreen",
        Severity.PAGE,
        "the stack silently stopped trading during market hours",
        "No positions while gates are green",
        "Follow the diagnosis: the first failing step is in runbook_diagnosis_step and the "
        "check's summary; reconcile only when every step passes.",
    ),
    "exposure_within_cap": AlertSpec(
        "ExposureBeyondCap",
        Severity.PAGE,
        "margin or exposure beyond 30% is the recovery procedure",
        "Margin or exposure beyond 30%",
        "Engage the kill switch, run bin/drain_overcap_only.sh --dry-run, close with a <=3% "
        "buffer until utilisation < 0.30, then review RISK_ALLOC_TARGET_PCT and Top-K.",
        "max(runbook_margin_utilisation_ratio{@SEL@})",
    ),
}


# One page per cause. The no-positions diagnosis pages only when its first failing step has no
# page of its own: a paging step's check speaks, and so does the spread guard (the stack guards
# itself by design: flat is the intended behaviour). A missing budget or weights is a ticket whose
# consequence, a stack that stopped trading, is the page: there the ticket is held instead.
HOLDS: tuple[Hold, ...] = (
    Hold(
        "no_positions_diagnosis",
        "kill_switch",
        "the kill switch page says why nothing trades",
        step=Step.KILL_SWITCH,
    ),
    Hold(
        "no_positions_diagnosis",
        "trading_mode",
        "the trading mode page says why nothing trades",
        step=Step.TRADING_MODE,
    ),
    Hold(
        "no_positions_diagnosis",
        "manifold_freshness",
        "the stale manifold page says why nothing trades",
        step=Step.FRESHNESS,
    ),
    Hold(
        "no_positions_diagnosis",
        "signal_freshness",
        "the stale signals page says why nothing trades",
        step=Step.FRESHNESS,
    ),
    Hold(
        "no_positions_diagnosis",
        "gates_blob_freshness",
        "the stale gates blob page says why nothing trades",
        step=Step.GATES_BLOB,
    ),
    Hold(
        "no_positions_diagnosis",
        "margin_utilisation",
        "the margin (or exposure) page says why nothing is added",
        step=Step.GUARDS,
    ),
    Hold(
        "no_positions_diagnosis",
        "spread_guard",
        "wide spreads block adds by design; the spread ticket says so",
        step=Step.GUARDS,
    ),
    Hold(
        "alloc_budget",
        "no_positions_diagnosis",
        "the diagnosis pages with this very step",
        step=Step.BUDGET,
    ),
    Hold(
        "allocation_weights",
        "no_positions_diagnosis",
        "the diagnosis pages with this very step",
        step=Step.WEIGHTS,
    ),
    Hold(
        "margin_utilisation",
        "exposure_within_cap",
        "the same figure: the recovery procedure (exposure) is the page",
    ),
    Hold(
        "allocation_status",
        "exposure_within_cap",
        "over-allocation is the exposure page's figure; off-Top-K still tickets",
        reason=Reason.THRESHOLD,
    ),
    Hold(
        "allocation_status",
        "allocator_topk",
        "weights off the published Top-K follow from the wrong number selected: one ticket, "
        "TopKMismatch",
        reason=Reason.MISMATCH,
    ),
)


def duration(seconds: float) -> str:
    """A Prometheus duration: whole minutes as `Nm`, else seconds."""
    whole = int(seconds)
    return f"{whole // 60}m" if whole % 60 == 0 and whole else f"{whole}s"


def seconds_of(text: str) -> int:
    """The seconds of a duration `duration()` wrote (or `Nh`)."""
    number, unit = int(text[:-1]), text[-1]
    return number * {"s": 1, "m": 60, "h": 3600}[unit]


def for_duration(check: Check, spec: AlertSpec) -> str:
    """Three runs' worth of failure, at least 30 s and at most 10 minutes."""
    if spec.for_:
        return spec.for_
    return duration(min(600, max(30, 3 * check.interval)))


def depends_on(dependencies: Iterable[Dependency]) -> str:
    """The `depends_on`/`dependency` label value: the names in Dependency order, comma-joined."""
    given = set(dependencies)
    return ",".join(d.value for d in Dependency if d in given) or "none"


def request_interval(dependency: Dependency, checks: Iterable[Check]) -> float:
    """How often the dependency is asked at least: the shortest interval of an enabled check
    reading it (60 s when none does)."""
    return min(
        (c.interval for c in checks if c.enabled and dependency in c.dependencies), default=60.0
    )


def down_window(dependency: Dependency, checks: Iterable[Check]) -> str:
    """No successful request over this window is "down": at least two requests, at least 1 m."""
    return duration(max(60, 2 * request_interval(dependency, checks)))


def flap_window(dependency: Dependency, checks: Iterable[Check]) -> str:
    """The window in which FLAP_CHANGES state changes are "flapping": ten requests, at least 5 m."""
    return duration(max(300, 10 * request_interval(dependency, checks)))


def servers_of(urls: Mapping[Dependency, str]) -> tuple[Server, ...]:
    """Dependencies grouped by the server (host and port) that answers them, in Dependency order:
    one server's outage is one page."""
    default_ports = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}
    groups: dict[tuple[str, ...], list[Dependency]] = {}
    for dependency in Dependency:
        parts = urlsplit(urls[dependency])
        if parts.scheme == "unix":
            key: tuple[str, ...] = ("unix", parts.path)
        else:
            port = parts.port or default_ports.get(parts.scheme, 0)
            key = ((parts.hostname or "").lower(), str(port))
        groups.setdefault(key, []).append(dependency)
    return tuple(tuple(group) for group in groups.values())


def paging_checks(checks: Iterable[Check]) -> list[str]:
    """The checks whose alert pages."""
    return [c.name for c in checks if c.name in ALERTS and ALERTS[c.name].severity is Severity.PAGE]


def dependency_sets(checks: Iterable[Check]) -> list[str]:
    """Every set of dependencies some check reads together, as depends_on labels, single
    dependencies first (they explain the sets they belong to)."""
    sets = {depends_on(c.dependencies) for c in checks if c.dependencies}
    return sorted(sets, key=lambda s: (s.count(","), s))


def cannot_read_for(checks: Iterable[Check]) -> str:
    """CannotRead's hold: three runs of the slowest check reading a dependency, 1 to 10 m."""
    slowest = max((c.interval for c in checks if c.enabled and c.dependencies), default=60.0)
    return duration(min(600, max(60, 3 * slowest)))
