"""Alert and recording rules generated from the catalog, so they cannot drift from it.

`python -m quantops_exporter.deploykit` writes them to deploy/prometheus/rules/ (and, as a
PrometheusRule, to deploy/kubernetes/); `--check` fails when the committed files differ.

What the rules promise (the README's "Alerts" section says it per alert):

- **A page states only what a check saw.** A check's alert fires on status `fail` (it read the
  stack and judged it unhealthy), never on `error` (it could not read): read errors surface as one
  `CannotRead` per dependency (or per set of dependencies a check reads together), naming the
  checks and their reasons.
- **"Down" is sustained.** `runbook_dependency_up` records only the latest request, so a
  dependency answering 5xx on one endpoint alternates 0/1. Down means no successful request over a
  window (`max_over_time`), for `DependencyDown` and for holding check alerts back alike; a
  dependency that keeps changing state pages once as `DependencyFlapping`. Dependencies one server
  serves (the backend's API and its /metrics, by default) page once, as that server.
- **One page per cause.** A consequence is held while its cause's check fails (`HOLDS`): the
  no-positions diagnosis behind the check of its first failing step, margin behind exposure,
  over-allocation behind exposure; a stuck check pages once (`CheckStuck`), not also as tickets.
- **One stack, one page.** Alerts about the stack aggregate across replicas by `(job, stack)`:
  two exporters scraping one stack are one page per fault (`stack` is the label to add to each
  target when several stacks share a job). Alerts about one exporter (down, stuck, missing runs)
  keep its `instance`.
- **`for:` follows the configured cadence:** the generator reads the daemon's settings
  (`--env-file`, the environment), so an interval override changes the hold.
- **The open is watched once.** `PreOpenNotReady` pages when the Pre-Open Spin-Up is still not
  green QUANTOPS_PREOPEN_READY_WITHIN_SECONDS after the market opens, within the first hour,
  and only for what no other page covers (a ticket check failing, a check that has not judged
  since the open).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import yaml

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import (
    CHECKS,
    DEFAULT_RUNBOOK_URL,
    Anchor,
    Section,
    section_checks,
)
from quantops_exporter.checks.diagnosis import PROCEDURE, Step
from quantops_exporter.checks.thresholds import PREOPEN_READY_WITHIN_SECONDS
from quantops_exporter.checks.verdict import Reason, Source
from quantops_exporter.sources.health import Dependency

DEFAULT_JOB = "quantops-exporter"
PREFIX = "SepRunbook"
# What one stack is: alerts about the stack aggregate by these labels, so replicas (instances)
# of one exporter collapse; a `stack` label on each target keeps several stacks in one job apart.
STACK = "job, stack"
SEL = "@SEL@"  # in a template query: the alert's own job and stack
STACK_SUFFIX = "{{ with $labels.stack }} on {{ . }}{{ end }}"
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


def _regex(names: Iterable[str]) -> str:
    return "|".join(names)


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


def _query(promql: str, *more: str) -> str:
    """A template `query` argument: `promql` with @SEL@ selecting the alert's job and stack
    (and any further `%s` filled by the template values `more`, in order)."""
    escaped = promql.replace('"', '\\"').replace(SEL, 'job=\\"%s\\",stack=\\"%s\\"')
    return f'(printf "{escaped}" {" ".join(("$labels.job", "$labels.stack", *more))})'


def _value(promql: str) -> str:
    """A template fragment printing a query's first value for the alert's stack."""
    return (
        f"{{{{ with query {_query(promql)} }}}}{{{{ . | first | value | humanize }}}}"
        "{{ else }}n/a{{ end }}"
    )


def _listing(promql: str, label: str, shown: str, *more: str) -> str:
    """A template fragment listing a query's series sorted by `label`, comma-separated, each
    rendered by `shown` (a template over `$s`)."""
    return (
        f'{{{{ range $i, $s := query {_query(promql, *more)} | sortByLabel "{label}" }}}}'
        f"{{{{ if $i }}}}, {{{{ end }}}}{shown}{{{{ end }}}}"
    )


def _failing_reason(check: str) -> str:
    promql = (
        f'max by (reason) (runbook_check_failure_reason{{check="{check}",{SEL}}} == 1 and '
        "on(instance, job, check) runbook:check_failing == 1)"
    )
    return (
        f"{{{{ with query {_query(promql)} }}}}{{{{ . | first | label "
        '"reason" }}{{ else }}unknown{{ end }}'
    )


def _seen_by(check: str) -> str:
    return _listing(
        f'runbook:check_failing{{check="{check}",{SEL}}} == 1',
        "instance",
        "{{ $s.Labels.instance }}",
    )


def _stack_failing(check: str) -> str:
    return f'stack:runbook_check_failing:max{{check="{check}"}} == 1'


def _cause(hold: Hold) -> str:
    """The condition under which `hold` holds its check's alert (one value per job and stack)."""
    condition = _stack_failing(hold.cause)
    if hold.step is not None:
        condition += (
            f" and on({STACK}) max by ({STACK}) (runbook_diagnosis_step"
            f'{{procedure="{PROCEDURE}",step="{hold.step.value}"}}) == 1'
        )
    if hold.reason is not None:
        condition += (
            f" and on({STACK}) max by ({STACK}) (runbook_check_failure_reason"
            f'{{check="{hold.check}",reason="{hold.reason.value}"}}) == 1'
        )
    return f"({condition})"


def check_alert(
    check: Check, spec: AlertSpec, runbook_url: str, holds: Sequence[Hold] = HOLDS
) -> dict[str, Any]:
    """The alert for one check: an exporter of the stack saw it fail while expected and enabled,
    unless a dependency it reads is down (sustained) or a cause it follows already pages."""
    expr = _stack_failing(check.name)
    if check.dependencies:
        deps = _regex(d.value for d in check.dependencies)
        # One outage, one page: DependencyDown speaks for every check behind it.
        expr += (
            f' unless on({STACK}) (stack:runbook_dependency_down:min{{dependency=~"{deps}"}} == 1)'
        )
    causes = [_cause(h) for h in holds if h.check == check.name]
    if causes:
        expr += f" unless on({STACK}) (" + " or ".join(causes) + ")"
    description = (
        f"{spec.summary} ({check.runbook}). Reason: {_failing_reason(check.name)}. "
        f"{spec.remedy} Seen by {_seen_by(check.name)}; the check's summary at /api/v1/checks "
        "says more."
    )
    if spec.value:
        description += f" Current value: {_value(spec.value)}."
    return {
        "alert": PREFIX + spec.alert,
        "expr": expr,
        "for": for_duration(check, spec),
        "labels": {
            "severity": spec.severity.value,
            "check": check.name,
            # For Alertmanager's inhibition (deploy/alertmanager): a second line behind `unless`.
            "depends_on": depends_on(check.dependencies),
        },
        "annotations": {
            "summary": spec.summary + STACK_SUFFIX,
            "description": description,
            "runbook_url": f"{runbook_url}#{check.anchor}",
            "severity_reason": spec.why,
        },
    }


def paging_checks(checks: Iterable[Check]) -> list[str]:
    """The checks whose alert pages."""
    return [c.name for c in checks if c.name in ALERTS and ALERTS[c.name].severity is Severity.PAGE]


def dependency_sets(checks: Iterable[Check]) -> list[str]:
    """Every set of dependencies some check reads together, as depends_on labels, single
    dependencies first (they explain the sets they belong to)."""
    sets = {depends_on(c.dependencies) for c in checks if c.dependencies}
    return sorted(sets, key=lambda s: (s.count(","), s))


def _per_server(record: str, servers: Sequence[Server]) -> str:
    """`record` (by job, stack, dependency) per server: one series labelled with every
    dependency it serves when all of them are affected, else one per affected dependency."""
    parts = []
    for server in servers:
        members = _regex(d.value for d in server)
        if len(server) == 1:
            parts.append(f'{record}{{dependency="{members}"}} == 1')
            continue
        # The whole server: every dependency it serves is affected (not merely the ones seen).
        whole = f'count by ({STACK}) ({record}{{dependency=~"{members}"}} == 1) == {len(server)}'
        parts.append(f'label_replace({whole}, "dependency", "{depends_on(server)}", "", "")')
        parts.append(f'({record}{{dependency=~"{members}"}} == 1 unless on({STACK}) ({whole}))')
    return " or ".join(f"({p})" for p in parts)


def _explained_by(deps: Iterable[Dependency]) -> str:
    """The regex of the dependencies whose outage explains read errors of `deps`."""
    given = set(deps)
    for dependency in list(given):
        given.update(BEHIND.get(dependency, ()))
    return _regex(d.value for d in Dependency if d in given)


def _unreadable_records(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """Per dependency: the checks reading it alone are in error on every exporter of the stack,
    and no outage behind it explains that."""
    rules = []
    for label in dependency_sets(checks):
        if "," in label:
            continue
        dependency = Dependency(label)
        rules.append(
            {
                "record": "stack:runbook_dependency_unreadable",
                "expr": f"max by ({STACK}) (stack:runbook_check_blind:min"
                f'{{depends_on="{label}"}}) == 1 unless on({STACK}) (max by ({STACK}) '
                f'(stack:runbook_dependency_down:min{{dependency=~"{_explained_by([dependency])}"}})'
                " == 1)",
                "labels": {"dependency": label},
            }
        )
    return rules


def _cannot_read(checks: Sequence[Check], servers: Sequence[Server]) -> str:
    """CannotRead's expression: each dependency (or each server, when every dependency it serves
    is unreadable) whose checks are blind; then each set of several dependencies read together
    whose checks are blind while none of its members is unreadable by itself."""
    parts = [_per_server("stack:runbook_dependency_unreadable", servers)]
    for label in dependency_sets(checks):
        if "," not in label:
            continue
        members = [Dependency(name) for name in label.split(",")]
        parts.append(
            f"(label_replace(max by ({STACK}) "
            f'(stack:runbook_check_blind:min{{depends_on="{label}"}}) == 1, '
            f'"dependency", "{label}", "", "") unless on({STACK}) (max by ({STACK}) '
            f'(stack:runbook_dependency_down:min{{dependency=~"{_explained_by(members)}"}}) == 1)'
            f" unless on({STACK}) stack:runbook_dependency_unreadable"
            f'{{dependency=~"{_regex(d.value for d in members)}"}})'
        )
    return " or ".join(parts)


def recording_rules(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """Records the alerts and dashboards share: per exporter (instance) first, then per stack
    (aggregated across replicas), in the order they depend on each other (one group)."""
    both = "on(instance, job, check)"

    def status(state: str) -> str:
        return (
            f'(sum without (status) (runbook_check_status{{status="{state}"}}) == bool 1) '
            f"* {both} (runbook_check_expected == bool 1) "
            f"* {both} (runbook_check_enabled == bool 1)"
        )

    rules: list[dict[str, Any]] = [
        {"record": "runbook:check_failing", "expr": status("fail")},
    ]
    # The checks that could not read, labelled with what they read (CannotRead's reasons).
    by_set: dict[str, list[str]] = {}
    for check in checks:
        by_set.setdefault(depends_on(check.dependencies), []).append(check.name)
    for label, names in sorted(by_set.items()):
        rules.append(
            {
                "record": "runbook:check_erroring",
                "expr": status("error").replace(
                    'runbook_check_status{status="error"}',
                    f'runbook_check_status{{status="error",check=~"{_regex(names)}"}}',
                ),
                "labels": {"depends_on": label},
            }
        )
    rules.append(
        {
            "record": "runbook:check_stuck",
            "expr": f"(time() - runbook_check_last_run_timestamp_seconds > bool {both} "
            f"({STUCK_INTERVALS} * runbook_check_interval_seconds + {STUCK_SLACK_SECONDS})) "
            f"* {both} (runbook_check_enabled == bool 1)",
        }
    )
    rules.append({"record": "runbook:dependency_down", "expr": "runbook_dependency_up == bool 0"})
    for dependency in Dependency:
        selector = f'runbook_dependency_up{{dependency="{dependency.value}"}}'
        rules.append(
            {
                "record": "runbook:dependency_down:sustained",
                "expr": f"max_over_time({selector}[{down_window(dependency, checks)}]) == bool 0",
                "labels": {"dependency": dependency.value},  # one rule per dependency
            }
        )
        rules.append(
            {
                "record": "runbook:dependency_flapping",
                "expr": f"changes({selector}[{flap_window(dependency, checks)}]) "
                f">= bool {FLAP_CHANGES}",
                "labels": {"dependency": dependency.value},
            }
        )
    freshness = " or ".join(
        f'label_replace(runbook:check_stuck{{check="{check}"}} * {both} '
        f'(runbook_check_expected == bool 1) == 1, "source", "{source.value}", "", "")'
        for source, check in FRESHNESS_CHECKS.items()
    )
    rules += [
        {
            "record": "runbook:checks_failing:count",
            "expr": "sum by (instance, job) (runbook:check_failing)",
        },
        {
            # Instruments whose last-read timestamp is over twice its limit old while the check
            # that reads the source is stuck and expected: the exporter-stuck safety net.
            "record": "runbook:freshness_stale:count",
            "expr": "count without (instrument) ((time() - "
            "runbook_freshness_last_update_timestamp_seconds > on(instance, job, source) "
            "group_left() (2 * runbook_freshness_max_age_seconds)) * on(instance, job, source) "
            f"group_left(check) ({freshness}))",
        },
        {
            "record": "stack:runbook_check_failing:max",
            "expr": f"max by ({STACK}, check) (runbook:check_failing)",
        },
        {
            "record": "stack:runbook_check_blind:min",
            "expr": f"min by ({STACK}, check, depends_on) (runbook:check_erroring)",
        },
        {
            "record": "stack:runbook_check_stuck_expected:min",
            "expr": f"min by ({STACK}, check) (runbook:check_stuck * {both} "
            "(runbook_check_expected == bool 1))",
        },
        {
            "record": "stack:runbook_dependency_down:min",
            "expr": f"min by ({STACK}, dependency) (runbook:dependency_down:sustained)",
        },
        {
            "record": "stack:runbook_dependency_flapping:min",
            "expr": f"min by ({STACK}, dependency) (runbook:dependency_flapping)",
        },
    ]
    return rules + _unreadable_records(checks)


def cannot_read_for(checks: Iterable[Check]) -> str:
    """CannotRead's hold: three runs of the slowest check reading a dependency, 1 to 10 m."""
    slowest = max((c.interval for c in checks if c.enabled and c.dependencies), default=60.0)
    return duration(min(600, max(60, 3 * slowest)))


def dependency_alerts(
    checks: Sequence[Check], servers: Sequence[Server], runbook_url: str
) -> list[dict[str, Any]]:
    """Alerts about what the exporter reads: down, flapping, or answering what no check can
    read. Each is one alert per server (or dependency set) and stack."""
    url = f"{runbook_url}#{Anchor.PRE_OPEN.value}"
    any_down = f"max by ({STACK}) (stack:runbook_dependency_down:min) == 1"
    flapping = _per_server("stack:runbook_dependency_flapping:min", servers)
    # The checks reading any combination of the alert's dependencies (a comma list).
    members = '(reReplaceAll "," "|" $labels.dependency)'
    reasons = _listing(
        f"max by (check, reason) (runbook_check_failure_reason{{{SEL}}} == 1 and "
        'on(instance, job, check) runbook:check_erroring{depends_on=~"(%[3]s)(,(%[3]s))*"} == 1)',
        "check",
        "{{ $s.Labels.check }} ({{ $s.Labels.reason }})",
        members,
    )
    return [
        {
            "alert": f"{PREFIX}DependencyDown",
            "expr": _per_server("stack:runbook_dependency_down:min", servers),
            "for": DEPENDENCY_DOWN_FOR,
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": "{{ $labels.dependency }} unreachable" + STACK_SUFFIX,
                "description": "No request to {{ $labels.dependency }} has succeeded for a "
                "sustained window (refused, reset, hung or 5xx) on any exporter of the stack; "
                "a comma list is one server serving several. The alerts of the checks that "
                "read it, and CannotRead and DependencyFlapping, are held back until it "
                "answers again.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}DependencyFlapping",
            "expr": f"({flapping}) unless on({STACK}) ({any_down})",
            "for": DEPENDENCY_FLAPPING_FOR,
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": "{{ $labels.dependency }} answers intermittently" + STACK_SUFFIX,
                "description": "Requests to {{ $labels.dependency }} keep alternating between "
                "answered and failed (refused, hung or 5xx): some endpoint fails while others "
                "answer. Checks reading it judge and error by turns, so their own alerts cannot "
                "hold; find the failing endpoint in the exporter's log or /api/v1/checks.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CannotRead",
            "expr": _cannot_read(checks, servers),
            "for": cannot_read_for(checks),
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": "Cannot read {{ $labels.dependency }}" + STACK_SUFFIX,
                "description": "The checks reading {{ $labels.dependency }} could not judge "
                f"(status error) on every exporter of the stack: {reasons}. Nothing is known "
                "about what they watch, so their own alerts cannot fire: a blind spot over "
                "paging checks. The dependency answers (it is not down) but not in a form the "
                "checks can read: fix the answer, or the exporter's access to it.",
                "runbook_url": url,
            },
        },
    ]


def exporter_alerts(
    checks: Sequence[Check], runbook_url: str, job: str = DEFAULT_JOB
) -> list[dict[str, Any]]:
    """Alerts about the exporter itself: down, absent, a check that stopped, missed runs, and
    the timestamp-based safety net."""
    url = f"{runbook_url}#{Anchor.PRE_OPEN.value}"
    paging = _regex(paging_checks(checks))
    stuck_page = f'stack:runbook_check_stuck_expected:min{{check=~"{paging}"}} == 1'
    stuck_rule = f"more than {STUCK_INTERVALS} intervals (+{STUCK_SLACK_SECONDS} s) old"
    return [
        {
            "alert": f"{PREFIX}ExporterDown",
            "expr": f'up{{job="{job}"}} == 0',
            "for": "2m",
            "labels": {"severity": "page", "check": "exporter"},
            "annotations": {
                "summary": "quantops-exporter on {{ $labels.instance }} is down",
                "description": "Prometheus cannot scrape the exporter: no runbook "
                "check is being watched.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}ExporterAbsent",
            "expr": f'absent(up{{job="{job}"}})',
            "for": "5m",
            "labels": {"severity": "page", "check": "exporter"},
            "annotations": {
                "summary": "No quantops-exporter target is scraped",
                "description": f"No target of job {job} exists: the runbook is not being watched.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CheckStuck",
            "expr": stuck_page,
            "for": "30s",
            "labels": {"severity": "page"},
            "annotations": {
                "summary": "Check {{ $labels.check }} has stopped running: its page cannot fire"
                + STACK_SUFFIX,
                "description": f"The check's last run is {stuck_rule} on every exporter of the "
                "stack while it is expected: what it watches is not being judged, and its last "
                "verdict is all the alerts know. Look at the exporter's scheduler "
                "(quantops_exporter_scheduler_* metrics, its log) and restart it.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CheckNotRunning",
            "expr": f"runbook:check_stuck == 1 unless on({STACK}, check) ({stuck_page}) "
            "unless on(instance, job, check) runbook:freshness_stale:count",
            "for": "5m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "Check {{ $labels.check }} has stopped running on "
                "{{ $labels.instance }}",
                "description": f"The check's last run is {stuck_rule}: this exporter's "
                "scheduler is stuck or overloaded.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}SchedulerMissingRuns",
            "expr": "increase(quantops_exporter_scheduler_missed_runs_total[15m]) > 0 or "
            "increase(quantops_exporter_scheduler_overlapping_runs_total[15m]) > 3",
            "for": "0m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "Check {{ $labels.check }} misses scheduled runs on "
                "{{ $labels.instance }}",
                "description": "Runs were dropped or overlapped: the check is slower "
                "than its interval or the event loop is blocked.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}FreshnessTimestampStale",
            "expr": f"runbook:freshness_stale:count unless on({STACK}, check) ({stuck_page})",
            "for": "5m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "{{ $labels.check }} stopped running on {{ $labels.instance }}: "
                "its {{ $labels.source }} timestamps are over twice their limit old",
                "description": "{{ $value }} {{ $labels.source }} instrument(s) were last read "
                "with a timestamp more than twice the configured limit old, and "
                "{{ $labels.check }} has not run since: this exporter is stuck, so whether the "
                "data is fresh now is not known. Computed from exported timestamps, so it fires "
                "even if the exporter's checks stopped updating.",
                "runbook_url": url,
            },
        },
    ]


def _not_ready(section: Section, checks: Sequence[Check]) -> str:
    """A template fragment listing `check (reason)` for each enabled check of `section` that
    failed, erred or was skipped because the market was closed, on the alert's stack."""
    names = _regex(c.name for c in section_checks(checks, section))
    return _listing(
        f'max by (check, reason) (runbook_check_failure_reason{{check=~"{names}",{SEL}}} == 1 '
        'and on(instance, job, check) (runbook_check_status{status=~"fail|error"} == 1 or '
        'runbook_check_failure_reason{reason="market_closed"} == 1) '
        "and on(instance, job, check) runbook_check_enabled == 1)",
        "check",
        "{{ $s.Labels.check }} ({{ $s.Labels.reason }})",
    )


def section_alerts(
    checks: Sequence[Check],
    runbook_url: str,
    ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> list[dict[str, Any]]:
    """`PreOpenNotReady`: the market opened more than `ready_within` seconds ago (and less than
    PREOPEN_WINDOW_SECONDS), and runbook_section_ok{section="pre-open"} has read 0 on every
    exporter of the stack for PREOPEN_RED_FOR; held while a paging check of the section fails,
    or a check of it cannot read, since that page (or CannotRead, DependencyDown) speaks."""
    section = Section.PRE_OPEN
    members = section_checks(checks, section)
    paging = _regex(paging_checks(members))
    every = _regex(c.name for c in members)
    since_open = (
        f"min by ({STACK}) (time() - runbook_market_last_open_timestamp_seconds) "
        f"> {ready_within:g} < {PREOPEN_WINDOW_SECONDS}"
    )
    market_open = (
        f"max by ({STACK}) (runbook_market_next_close_timestamp_seconds "
        "< runbook_market_next_open_timestamp_seconds)"
    )
    red = (
        f"max by ({STACK}) (max_over_time(runbook_section_ok"
        f'{{section="{section.slug}"}}[{PREOPEN_RED_FOR}])) == 0'
    )
    spoken = (
        f'max by ({STACK}) (stack:runbook_check_failing:max{{check=~"{paging}"}}) == 1 or '
        f'max by ({STACK}) (stack:runbook_check_blind:min{{check=~"{every}"}}) == 1'
    )
    after = duration(ready_within)
    return [
        {
            "alert": f"{PREFIX}PreOpenNotReady",
            "expr": f"{since_open} and on({STACK}) {market_open} and on({STACK}) {red} "
            f"unless on({STACK}) ({spoken})",
            "for": "0m",
            "labels": {"severity": "page", "check": "section", "section": section.slug},
            "annotations": {
                "summary": f"Pre-Open Spin-Up not green {after} after the open" + STACK_SUFFIX,
                "description": f"More than {after} after the FX market opened, the Pre-Open "
                "Spin-Up is still not green on every exporter of the stack (the runbook's step "
                f"6: if still flat after 5 minutes): {_not_ready(section, checks)}. No other "
                "page speaks for these: a ticket check failing, or a check that has not judged "
                "since the open (market_closed: its last run was before it). Run "
                "`quantops-exporter check --section pre-open` or see the status page. Only the "
                "first hour after an open is watched; then each check's own alert owns it.",
                "runbook_url": f"{runbook_url}#{Anchor.PRE_OPEN.value}",
            },
        }
    ]


def build_rules(
    checks: Iterable[Check] = CHECKS,
    runbook_url: str = DEFAULT_RUNBOOK_URL,
    job: str = DEFAULT_JOB,
    servers: Sequence[Server] = DEFAULT_SERVERS,
    preopen_ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> dict[str, Any]:
    """The rule file: recording rules, one alert per check, the runbook sections', the
    dependencies', the exporter's."""
    checks = tuple(checks)
    return {
        "groups": [
            {"name": "quantops-runbook-records", "rules": recording_rules(checks)},
            {
                "name": "quantops-runbook-checks",
                "rules": [
                    check_alert(c, ALERTS[c.name], runbook_url) for c in checks if c.name in ALERTS
                ],
            },
            {
                "name": "quantops-runbook-sections",
                "rules": section_alerts(checks, runbook_url, preopen_ready_within),
            },
            {
                "name": "quantops-runbook-dependencies",
                "rules": dependency_alerts(checks, servers, runbook_url),
            },
            {
                "name": "quantops-runbook-exporter",
                "rules": exporter_alerts(checks, runbook_url, job),
            },
        ]
    }


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The rule file as a prometheus-operator PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "quantops-runbook", "labels": {"release": "prometheus"}},
        "spec": rules,
    }


def render(document: dict[str, Any]) -> str:
    """YAML as committed."""
    header = (
        "# Generated by `python -m quantops_exporter.deploykit` from the check catalog.\n"
        "# Do not edit by hand: change quantops_exporter/deploykit/ and regenerate.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
