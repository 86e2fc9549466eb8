"""The Grafana dashboard, generated (`python -m quantops_exporter.deploykit`) so that every panel
query is known to the tests.

No query names a job: the `job` variable lists the jobs of the targets that export
quantops_exporter_build_info, the `instance` variable that job's exporters, and every panel
selects `$instance` (so a renamed job, or several, still fill every panel). A table shows the
rules' firing alerts.
"""

from __future__ import annotations

from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'  # the selector every query shares (the exporters of `$job`)
FIRING = (
    'sum by (alertname, severity, stack, check, dependency, instance) (ALERTS{alertstate="firing",'
    'alertname=~"SepRunbook.+",job=~"$job"}) '
    'or on() label_replace(vector(0), "alertname", "none firing", "", "")'
)

# (title, kind, [(expr, legend)], unit, width, thresholds as (value, colour) steps)
PANELS: list[tuple[str, str, list[tuple[str, str]], str, int, list[tuple[float | None, str]]]] = [
    (
        "Checks failing now",
        "stat",
        [(f"sum(runbook:check_failing{{{SEL}}}) or vector(0)", "failing")],
        "none",
        3,
        [(None, "green"), (1, "red")],
    ),
    (  # errors page as CannotRead, not as the check: shown apart from failures
        "Checks that cannot read",
        "stat",
        [(f"sum(runbook:check_erroring{{{SEL}}}) or vector(0)", "cannot read")],
        "none",
        3,
        [(None, "green"), (1, "orange")],
    ),
    (
        "Firing alerts (SepRunbook*, this job)",
        "table",
        [(FIRING, "{{alertname}}")],
        "none",
        24,
        [(None, "green"), (1, "red")],
    ),
    (
        "All checks (1 = ok or skipped)",
        "state-timeline",
        [(f"runbook_check_ok{{{SEL}}}", "{{check}}")],
        "none",
        18,
        [(None, "red"), (1, "green")],
    ),
    (
        "Expected now (market-hours checks)",
        "state-timeline",
        [(f"runbook_check_expected{{{SEL}}}", "{{check}}")],
        "none",
        24,
        [(None, "text"), (1, "blue")],
    ),
    (
        "Freshness age per instrument (s)",
        "timeseries",
        [
            (
                f"time() - runbook_freshness_last_update_timestamp_seconds{{{SEL}}}",
                "{{source}} {{instrument}}",
            )
        ],
        "s",
        12,
        [(None, "green"), (30, "red")],
    ),
    (
        "Freshness age p90 by source (s)",
        "timeseries",
        [
            (
                f"histogram_quantile(0.9, sum by (le, source) "
                f"(rate(runbook_freshness_age_seconds_bucket{{{SEL}}}[5m])))",
                "{{source}}",
            )
        ],
        "s",
        12,
        [(None, "green")],
    ),
    (
        "Eligible instruments (need 3)",
        "timeseries",
        [(f"runbook_gates_eligible{{{SEL}}}", "eligible")],
        "none",
        6,
        [(None, "red"), (3, "green")],
    ),
    (
        "Selected vs ALLOC_TOP_K",
        "timeseries",
        [
            (f"runbook_allocator_selected{{{SEL}}}", "selected"),
            (f"runbook_allocator_top_k{{{SEL}}}", "K"),
        ],
        "none",
        6,
        [(None, "green")],
    ),
    (
        "Margin utilisation (limit 0.30)",
        "timeseries",
        [(f"runbook_margin_utilisation_ratio{{{SEL}}}", "utilisation")],
        "percentunit",
        6,
        [(None, "green"), (0.3, "red")],
    ),
    (
        "Total allocation (limit 0.30)",
        "timeseries",
        [(f"runbook_allocation_total_ratio{{{SEL}}}", "allocation")],
        "percentunit",
        6,
        [(None, "green"), (0.3, "red")],
    ),
    (
        "Market sessions open",
        "state-timeline",
        [(f"runbook_market_session_open{{{SEL}}}", "{{session}}")],
        "none",
        12,
        [(None, "text"), (1, "green")],
    ),
    (
        "Spreads (bps)",
        "timeseries",
        [(f"runbook_spread_bps{{{SEL}}}", "{{instrument}}")],
        "none",
        12,
        [(None, "green")],
    ),
    (
        "No-positions diagnosis step",
        "state-timeline",
        [(f"runbook_diagnosis_step{{{SEL}}}", "{{step}}")],
        "none",
        12,
        [(None, "text"), (1, "red")],
    ),
    (
        "Kill switch engaged",
        "state-timeline",
        [(f"runbook_kill_switch_engaged{{{SEL}}}", "{{source}}")],
        "none",
        12,
        [(None, "green"), (1, "orange")],
    ),
    (
        "Exporter up and dependencies",
        "state-timeline",
        [
            (f"up{{{SEL}}}", "exporter {{instance}}"),
            (f"runbook_dependency_up{{{SEL}}}", "{{dependency}}"),
            (f"runbook_dependency_endpoint_up{{{SEL}}}", "{{dependency}} {{endpoint}}"),
        ],
        "none",
        12,
        [(None, "red"), (1, "green")],
    ),
    (
        "Check runs per second by status",
        "timeseries",
        [(f"sum by (status) (rate(runbook_check_runs_total{{{SEL}}}[5m]))", "{{status}}")],
        "ops",
        12,
        [(None, "green")],
    ),
    (
        "Check duration p99 (s)",
        "timeseries",
        [
            (
                f"histogram_quantile(0.99, sum by (le, check) "
                f"(rate(runbook_check_duration_seconds_bucket{{{SEL}}}[5m])))",
                "{{check}}",
            )
        ],
        "s",
        12,
        [(None, "green")],
    ),
]


def build_dashboard() -> dict[str, Any]:
    """The dashboard JSON model."""
    panels, x, y = [], 0, 0
    for index, (title, kind, targets, unit, width, steps) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(
            {
                "id": index,
                "type": kind,
                "title": title,
                "datasource": DS,
                "gridPos": {"x": x, "y": y, "w": width, "h": 8},
                "targets": [
                    {"refId": chr(64 + n), "datasource": DS, "expr": expr, "legendFormat": legend}
                    for n, (expr, legend) in enumerate(targets, start=1)
                ],
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "thresholds": {
                            "mode": "absolute",
                            "steps": [{"value": value, "color": colour} for value, colour in steps],
                        },
                    },
                    "overrides": [],
                },
                "options": {},
            }
        )
        x += width
    return {
        "title": "quantops-exporter: SEP runbook",
        "uid": "quantops-runbook",
        "tags": ["quantops", "sep", "runbook"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Data source",
                },
                {
                    "name": "job",
                    "type": "query",
                    "datasource": DS,
                    "label": "Job",
                    "query": "label_values(quantops_exporter_build_info, job)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                },
                {
                    # No allValue: "All" is the job's exporters, not every instance there is.
                    "name": "instance",
                    "type": "query",
                    "datasource": DS,
                    "label": "Exporter",
                    "query": 'label_values(quantops_exporter_build_info{job=~"$job"}, instance)',
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                },
            ]
        },
        "panels": panels,
    }
