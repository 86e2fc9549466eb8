"""Alert and recording rules generated from the catalog, so they cannot drift from it.

`python -m quantops_exporter.deploykit` writes them to deploy/prometheus/rules/ (and, as a
PrometheusRule, to deploy/kubernetes/); `--check` fails when the committed files differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECKS, DEFAULT_RUNBOOK_URL, Anchor

DEFAULT_JOB = "quantops-exporter"
PREFIX = "SepRunbook"


class Severity(StrEnum):
    """`page` wakes someone; `ticket` waits for working hours."""

    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """How one check pages: its alert name, severity (and why), summary and remedy. The
    runbook anchor is the check's own (Check.anchor)."""

    alert: str
    severity: Severity
    why: str
    summary: str
    remedy: str
    value: str | None = None  # PromQL for the current value shown in the description
    for_: str | None = None  # overrides the cadence-derived duration


ALERTS: dict[str, AlertSpec] = {
    "valkey_ping": AlertSpec(
        "ValkeyUnhealthy",
        Severity.PAGE,
        "every other check reads Valkey",
        "Valkey answers but not as the exporter needs",
        "Check the exporter's Valkey user (ACL) and the server's health.",
        "runbook_valkey_ping_latency_seconds",
    ),
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
        "ws:last:manifold is stale or unreadable",
        "Check ws-hydrator (it rewrites each key every ~10 s) and the warmup 'hydrate' step.",
        'max(time() - runbook_freshness_last_update_timestamp_seconds{source="ws_manifold"})',
    ),
    "signal_freshness": AlertSpec(
        "SignalsStale",
        Severity.PAGE,
        "no new signals means no new entries",
        "sep:signal_index has had no insert within the limit",
        "Check manifold_generator and prime_qfh_history; the warmup primes the index on boot.",
        'max(time() - runbook_freshness_last_update_timestamp_seconds{source="signal_index"})',
    ),
    "gates_blob_freshness": AlertSpec(
        "GatesBlobStale",
        Severity.PAGE,
        "allocator-lite holds previous weights while the blob is stale",
        "opt:rolling:gates_blob is stale",
        "Check the rolling evaluator; do not force entries while the blob is stale.",
        'max(time() - runbook_freshness_last_update_timestamp_seconds{source="gates_blob"})',
    ),
    "gates_eligible": AlertSpec(
        "TooFewEligible",
        Severity.PAGE,
        "the stack's own rule: fewer than 3 eligibles for 10 minutes pages",
        "Fewer eligible instruments than needed during active sessions",
        "Review sep_rolling_gate rows: repetitions, hazards and cooldowns per instrument.",
        "runbook_gates_eligible",
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
    "sessions_open": AlertSpec(
        "SessionsCheck",
        Severity.TICKET,
        "informational: the check never fails by design",
        "The sessions check reports a problem",
        "Check the exporter's calendar settings.",
    ),
    "margin_utilisation": AlertSpec(
        "MarginHigh",
        Severity.PAGE,
        "at or above the limit the stack stops adding; beyond it is risk",
        "Margin utilisation at or above MARGIN_HYST_HIGH",
        "Follow the recovery procedure if it keeps rising.",
        "runbook_margin_utilisation_ratio",
    ),
    "allocator_topk": AlertSpec(
        "TopKMismatch",
        Severity.TICKET,
        "the allocator publishes the wrong number of weights",
        "sep_allocator_selected count differs from ALLOC_TOP_K",
        "Check allocator-lite logs and ALLOC_TOP_K.",
        "runbook_allocator_selected",
    ),
    "position_caps": AlertSpec(
        "PositionOverCap",
        Severity.PAGE,
        "a position beyond its cap is unplanned risk",
        "An open position exceeds min(budget/K, PM_MAX_PER_POS_PCT x budget)",
        "Reduce the position; review PM_MAX_PER_POS_PCT and the budget.",
        "max(runbook_position_margin_cap_ratio)",
    ),
    "allocator_cadence": AlertSpec(
        "AllocatorCadence",
        Severity.TICKET,
        "a wrong cadence degrades allocation, it does not stop trading",
        "allocator-lite cadence differs from ALLOC_INTERVAL_SEC or its cycle is stale",
        "Check allocator-lite's ALLOC_INTERVAL_SEC and that it is cycling.",
        "runbook_allocator_interval_seconds",
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
        "runbook_allocation_total_ratio",
    ),
    "candles": AlertSpec(
        "CandlesIncomplete",
        Severity.TICKET,
        "a warmup gap, visible before trading resumes",
        "Candles are short or stale",
        "Re-run the warmup backfill; check sep-candle-fetcher.",
    ),
    "allocator_health": AlertSpec(
        "AllocatorUnhealthy",
        Severity.TICKET,
        "an outage pages through DependencyDown; this is the rest",
        "allocator-lite /status or backend /health is not healthy",
        "Check allocator-lite and rolling evaluator logs before disengaging the kill switch.",
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
        "max(runbook_spread_bps)",
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
        "runbook_margin_utilisation_ratio",
    ),
}


def for_duration(check: Check, spec: AlertSpec) -> str:
    """Three runs' worth of failure, at least 30 s and at most 10 minutes."""
    if spec.for_:
        return spec.for_
    seconds = int(min(600, max(30, 3 * check.interval)))
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _query(promql: str) -> str:
    """A template fragment printing a query's first value for this instance."""
    return (
        '{{ with query "' + promql.replace('"', '\\"') + '" }}{{ . | first | value | '
        "humanize }}{{ else }}n/a{{ end }}"
    )


def check_alert(check: Check, spec: AlertSpec, runbook_url: str) -> dict[str, Any]:
    """The alert for one check: failing while expected, unless its dependency is down."""
    expr = f'runbook:check_failing{{check="{check.name}"}} == 1'
    if check.dependencies:
        deps = "|".join(d.value for d in check.dependencies)
        # One outage, one page: DependencyDown speaks for every check behind it.
        expr += f' unless on(instance, job) (runbook_dependency_up{{dependency=~"{deps}"}} == 0)'
    reason = (
        f'{{{{ with query (printf "runbook_check_failure_reason{{check=\\"{check.name}\\",'
        f'instance=\\"%s\\"}} == 1" $labels.instance) }}}}{{{{ . | first | label '
        f'"reason" }}}}{{{{ else }}}}unknown{{{{ end }}}}'
    )
    description = (
        f"{spec.summary} ({check.runbook}). Reason: {reason}. {spec.remedy} "
        "The check's summary at /api/v1/checks says more."
    )
    if spec.value:
        description += f" Current value: {_query(spec.value)}."
    return {
        "alert": PREFIX + spec.alert,
        "expr": expr,
        "for": for_duration(check, spec),
        "labels": {
            "severity": spec.severity.value,
            "check": check.name,
            # For Alertmanager's inhibition (deploy/alertmanager): a second line behind `unless`.
            "depends_on": ",".join(d.value for d in check.dependencies) or "none",
        },
        "annotations": {
            "summary": f"{spec.summary} on {{{{ $labels.instance }}}}",
            "description": description,
            "runbook_url": f"{runbook_url}#{check.anchor}",
            "severity_reason": spec.why,
        },
    }


def exporter_alerts(runbook_url: str, job: str = DEFAULT_JOB) -> list[dict[str, Any]]:
    """Alerts about the exporter itself and the dependencies it reads."""
    url = f"{runbook_url}#{Anchor.PRE_OPEN.value}"
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
            "alert": f"{PREFIX}DependencyDown",
            "expr": "runbook:dependency_down == 1",
            "for": "1m",
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": "{{ $labels.dependency }} unreachable from {{ $labels.instance }}",
                "description": "The exporter cannot reach {{ $labels.dependency }} "
                "(refused, reset, hung or 5xx); alerts of the checks that read it are "
                "held back until it answers again.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CheckNotRunning",
            "expr": "time() - runbook_check_last_run_timestamp_seconds > 3 * "
            "runbook_check_interval_seconds + 60 and on(instance, job, check) "
            "runbook_check_enabled == 1",
            "for": "5m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "Check {{ $labels.check }} has stopped running",
                "description": "The check's last run is more than three intervals "
                "old: the exporter's scheduler is stuck or overloaded.",
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
                "summary": "Check {{ $labels.check }} misses scheduled runs",
                "description": "Runs were dropped or overlapped: the check is slower "
                "than its interval or the event loop is blocked.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}FreshnessTimestampStale",
            "expr": "time() - runbook_freshness_last_update_timestamp_seconds > on(instance, job, "
            "source) group_left() (2 * runbook_freshness_max_age_seconds)",
            "for": "5m",
            "labels": {"severity": "ticket", "check": "freshness"},
            "annotations": {
                "summary": "{{ $labels.source }} {{ $labels.instrument }} data is "
                "twice its limit old",
                "description": "Computed from exported timestamps, so it fires even "
                "if the exporter itself is stuck and its checks stopped updating.",
                "runbook_url": url,
            },
        },
    ]


def recording_rules() -> list[dict[str, str]]:
    """Records the alerts and dashboards share."""
    return [
        {
            "record": "runbook:check_failing",
            "expr": "(runbook_check_ok == bool 0) * on(instance, job, check) "
            "(runbook_check_expected == bool 1)",
        },
        {"record": "runbook:dependency_down", "expr": "runbook_dependency_up == bool 0"},
        {
            "record": "runbook:checks_failing:count",
            "expr": "sum by (instance, job) (runbook:check_failing)",
        },
    ]


def build_rules(
    checks: Iterable[Check] = CHECKS,
    runbook_url: str = DEFAULT_RUNBOOK_URL,
    job: str = DEFAULT_JOB,
) -> dict[str, Any]:
    """The rule file: recording rules, one alert per check, the exporter's own alerts."""
    return {
        "groups": [
            {"name": "quantops-runbook-records", "rules": recording_rules()},
            {
                "name": "quantops-runbook-checks",
                "rules": [check_alert(c, ALERTS[c.name], runbook_url) for c in checks],
            },
            {"name": "quantops-runbook-exporter", "rules": exporter_alerts(runbook_url, job)},
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
