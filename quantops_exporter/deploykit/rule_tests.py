"""promtool unit tests for the generated rules, written to deploy/prometheus/tests/ by
`python -m quantops_exporter.deploykit`, run with

    promtool test rules deploy/prometheus/tests/quantops-runbook.test.yml

Expected annotations are rendered here by plain string substitution, independently of
Prometheus's templating, so a template that renders wrongly fails the test.
"""

from __future__ import annotations

from typing import Any

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECKS, DEFAULT_RUNBOOK_URL, Anchor
from quantops_exporter.deploykit.rules import ALERTS, DEFAULT_JOB, PREFIX, for_duration

INSTANCE = "quantops:9110"
BASE = {"instance": INSTANCE, "job": DEFAULT_JOB}
EXPORTER_URL = f"{DEFAULT_RUNBOOK_URL}#{Anchor.PRE_OPEN.value}"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in {**labels, **BASE}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _seconds(duration: str) -> int:
    number, unit = int(duration[:-1]), duration[-1]
    return number * (60 if unit == "m" else 1)


def expected_annotations(check: Check, reason: str, value: str = "n/a") -> dict[str, str]:
    """The annotations the rule should render, by substitution on the spec."""
    spec = ALERTS[check.name]
    description = (
        f"{spec.summary} ({check.runbook}). Reason: {reason}. {spec.remedy} "
        "The check's summary at /api/v1/checks says more."
    )
    if spec.value:
        description += f" Current value: {value}."
    return {
        "summary": f"{spec.summary} on {INSTANCE}",
        "description": description,
        "runbook_url": f"{DEFAULT_RUNBOOK_URL}#{check.anchor}",
        "severity_reason": spec.why,
    }


def failing(
    check: Check,
    *,
    expected: str = "1x40",
    ok: str = "1 0x40",
    reason: str = "stale",
    deps_up: str = "1x40",
) -> list[dict[str, str]]:
    """Series of one check failing from t=1m (interval 1m) with `reason`."""
    rows = [
        _series("runbook_check_ok", ok, check=check.name),
        _series("runbook_check_expected", expected, check=check.name),
        _series("runbook_check_failure_reason", "0 1x40", check=check.name, reason=reason),
    ]
    rows += [
        _series("runbook_dependency_up", deps_up, dependency=d.value) for d in check.dependencies
    ]
    return rows


def check_fires(check: Check) -> dict[str, Any]:
    """The check's alert fires once it has failed for its `for`, with labels and annotations."""
    spec = ALERTS[check.name]
    eval_at = 60 + _seconds(for_duration(check, spec)) + 60
    return {
        "interval": "1m",
        "input_series": failing(check),
        "alert_rule_test": [
            {"eval_time": "30s", "alertname": PREFIX + spec.alert, "exp_alerts": []},
            {
                "eval_time": f"{eval_at}s",
                "alertname": PREFIX + spec.alert,
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": spec.severity.value,
                            "check": check.name,
                            "depends_on": depends_on(check),
                            **BASE,
                        },
                        "exp_annotations": expected_annotations(check, "stale"),
                    }
                ],
            },
        ],
    }


def depends_on(check: Check) -> str:
    """The depends_on label the rule should carry."""
    return ",".join(d.value for d in check.dependencies) or "none"


def _check(name: str) -> Check:
    return next(c for c in CHECKS if c.name == name)


def special_cases() -> list[dict[str, Any]]:
    """Silences that must hold, the current value rendered, and the exporter's own alerts."""
    manifold = _check("manifold_freshness")
    alert = PREFIX + ALERTS[manifold.name].alert
    value_case = {  # the description shows the age computed from the exported timestamp
        "interval": "1m",
        "input_series": [
            *failing(manifold),
            _series(
                "runbook_freshness_last_update_timestamp_seconds",
                "0x40",
                source="ws_manifold",
                instrument="EUR_USD",
            ),
        ],
        "alert_rule_test": [
            {
                "eval_time": "3m",
                "alertname": alert,
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "page",
                            "check": manifold.name,
                            "depends_on": "valkey",
                            **BASE,
                        },
                        "exp_annotations": expected_annotations(manifold, "stale", "180"),
                    }
                ],
            }
        ],
    }
    closed = {  # the market is closed: ok=1 (skipped) and expected=0, or failing but unexpected
        "interval": "1m",
        "input_series": failing(manifold, expected="0x40"),
        "alert_rule_test": [{"eval_time": "30m", "alertname": alert, "exp_alerts": []}],
    }
    dependency_down = {  # Valkey is down: one DependencyDown page, not a page per check
        "interval": "1m",
        "input_series": failing(manifold, reason="unreachable", deps_up="1 0x40"),
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": alert, "exp_alerts": []},
            {
                "eval_time": "10m",
                "alertname": f"{PREFIX}DependencyDown",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "page",
                            "check": "dependency",
                            "dependency": "valkey",
                            **BASE,
                        },
                        "exp_annotations": {
                            "summary": f"valkey unreachable from {INSTANCE}",
                            "description": (
                                "The exporter cannot reach valkey (refused, reset, hung or 5xx); "
                                "alerts of the checks that read it are held back until it "
                                "answers again."
                            ),
                            "runbook_url": EXPORTER_URL,
                        },
                    }
                ],
            },
        ],
    }
    flapping = {  # failing for 15 s at a time, shorter than the 30 s `for`: silent
        "interval": "15s",
        "input_series": failing(manifold, ok="1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0"),
        "alert_rule_test": [
            {"eval_time": f"{15 * n}s", "alertname": alert, "exp_alerts": []} for n in range(1, 20)
        ],
    }
    exporter_down = {
        "interval": "1m",
        "input_series": [_series("up", "1 0x10")],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": f"{PREFIX}ExporterDown", "exp_alerts": []},
            {
                "eval_time": "4m",
                "alertname": f"{PREFIX}ExporterDown",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "page", "check": "exporter", **BASE},
                        "exp_annotations": {
                            "summary": f"quantops-exporter on {INSTANCE} is down",
                            "description": (
                                "Prometheus cannot scrape the exporter: no runbook check is "
                                "being watched."
                            ),
                            "runbook_url": EXPORTER_URL,
                        },
                    }
                ],
            },
        ],
    }
    stuck = {  # the exporter answers but a check's last run stopped moving
        "interval": "1m",
        "input_series": [
            _series("runbook_check_last_run_timestamp_seconds", "0x30", check="candles"),
            _series("runbook_check_interval_seconds", "60x30", check="candles"),
            _series("runbook_check_enabled", "1x30", check="candles"),
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": f"{PREFIX}CheckNotRunning", "exp_alerts": []},
            {
                "eval_time": "15m",
                "alertname": f"{PREFIX}CheckNotRunning",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "ticket", "check": "candles", **BASE},
                        "exp_annotations": {
                            "summary": "Check candles has stopped running",
                            "description": (
                                "The check's last run is more than three intervals old: the "
                                "exporter's scheduler is stuck or overloaded."
                            ),
                            "runbook_url": EXPORTER_URL,
                        },
                    }
                ],
            },
        ],
    }
    return [value_case, closed, dependency_down, flapping, exporter_down, stuck]


def build_tests() -> dict[str, Any]:
    """The promtool test file."""
    return {
        "rule_files": ["../rules/quantops-runbook.rules.yml"],
        "evaluation_interval": "15s",
        "tests": [check_fires(c) for c in CHECKS] + special_cases(),
    }
