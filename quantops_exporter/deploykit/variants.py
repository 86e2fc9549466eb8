"""The invariance variants of every promtool case, generated from the case itself: the rules
must give the same alerts, carrying the labels, in setups no case was written for.

- **stacks:** every series gains the target labels `stack="eu"` and `region="emea"`, and a second
  stack (`stack="us"`) runs beside it in the same job: a healthy copy of the same series (no
  check failing or blind, every dependency and section up, every check and source fresh).
  Every alert expected is expected again, with both labels (`on eu` ending its summary), and
  nothing of `us` may join it. A case that names its stacks keeps them, each with a healthy
  copy `<stack>-b` beside it.
- **replicas:** every exporter has a twin (its port + 1) exporting the same series. The alerts
  about the stack are the same, their "Seen by" naming both; those about one exporter come
  once per twin.
- **renamed job:** the scrape pool is renamed RENAME_AT seconds into the case. The old job
  exports a healthy copy until then and stops with no staleness marker (Prometheus writes none
  for a removed pool: its last samples stay visible for the 5-minute lookback); the renamed job
  starts there and lives the case, shifted by RENAME_AT. The same alerts, with the new job.

`ExporterAbsent` is Prometheus-wide (`absent()` sees every target and keeps no label): it
fires as in the case, carrying no target label, except beside the healthy stack's exporters
(when the case has exporters to copy), which are targets: there it cannot fire. Under a renamed
job its timing counts from the old job's last samples, not from the case's start: the renamed
variant leaves it out (setups.py's removed-job case tests it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from quantops_exporter.deploykit.notation import (
    Sample,
    compress,
    expand,
    parse,
    seconds,
    selector,
)
from quantops_exporter.deploykit.promql import STACK_SUFFIX
from quantops_exporter.deploykit.rules import PREFIX, build_rules
from quantops_exporter.deploykit.setups import test_file

Case = dict[str, Any]
STACK, OTHER_STACK = "eu", "us"
TARGET = {"stack": STACK, "region": "emea"}  # the extra target labels of the `stacks` variant
RENAME_AT = 120  # seconds into the case (a whole number of samples at 15 s and at 1 m)
ABSENT = f"{PREFIX}ExporterAbsent"
BUILD_INFO = "quantops_exporter_build_info"
# How a healthy stack exports each series the rules read (any other: as the case has it).
HEALTHY_ONES = frozenset(
    {
        "runbook_dependency_up",
        "runbook_dependency_endpoint_up",
        "runbook_section_ok",
        "up",
        "quantops_exporter_build_info",
    }
)
HEALTHY_ZEROS = frozenset(
    {
        "runbook_check_failure_reason",
        "runbook_diagnosis_step",
        "quantops_exporter_scheduler_missed_runs_total",
        "quantops_exporter_scheduler_overlapping_runs_total",
    }
)
CLOCKED = frozenset(  # a running check, a writer on cadence: the timestamp follows the clock
    {
        "runbook_check_last_run_timestamp_seconds",
        "runbook_freshness_last_update_timestamp_seconds",
    }
)
NEVER_HEALTHY = frozenset({"runbook_check_unreadable"})  # a healthy run reads everything

_SEEN_BY = re.compile(r"Seen by ([^;]+);")


def _step(case: Case) -> int:
    return seconds(case["interval"])


def _samples_to_cover(case: Case) -> int:
    """Samples (at the case's interval) reaching past its last evaluation."""
    last = max((seconds(t["eval_time"]) for t in case["alert_rule_test"]), default=0)
    return last // _step(case) + 2


def healthy(name: str, labels: Mapping[str, str], values: str, count: int, step: int) -> str:
    """`count` samples of the series as a healthy stack exports it."""
    if name in HEALTHY_ONES:
        return f"1x{count - 1}"
    if name in HEALTHY_ZEROS or labels.get("status") in ("fail", "error"):
        return f"0x{count - 1}"
    if name in CLOCKED:
        return f"0+{step}x{count - 1}"
    return values


@cache
def _summaries_naming_the_stack() -> frozenset[str]:
    return frozenset(
        rule["alert"]
        for group in build_rules()["groups"]
        for rule in group["rules"]
        if "alert" in rule and str(rule["annotations"]["summary"]).endswith(STACK_SUFFIX)
    )


def _each_alert(case: Case, change: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> None:
    for check in case["alert_rule_test"]:
        alerts: list[dict[str, Any]] = []
        for alert in check["exp_alerts"]:
            alerts += change(check["alertname"], alert)
        check["exp_alerts"] = alerts


def _copy(case: Case, prefix: str) -> Case:
    return {
        "name": f"{prefix}: {case['name']}",
        "interval": case["interval"],
        "input_series": [dict(s) for s in case["input_series"]],
        "alert_rule_test": [
            {**check, "exp_alerts": [_deep(a) for a in check["exp_alerts"]]}
            for check in case["alert_rule_test"]
        ],
    }


def _deep(alert: dict[str, Any]) -> dict[str, Any]:
    return {key: dict(value) for key, value in alert.items()}


def _beside(stack: str) -> str:
    """The healthy stack beside `stack`."""
    return f"{stack}-b" if stack != STACK else OTHER_STACK


def stacks(case: Case) -> Case:
    """The case on stack `eu` (with a `region`; a case naming its stacks keeps them), a healthy
    copy of each stack beside it in its job."""
    variant = _copy(case, "stacks")
    count, step = _samples_to_cover(case), _step(case)
    series = []
    for given in case["input_series"]:
        name, labels = parse(given["series"])
        labels = TARGET | labels
        series.append({"series": selector(name, labels), "values": given["values"]})
        if name not in NEVER_HEALTHY:
            other = labels | {"stack": _beside(labels["stack"])}
            if "instance" in labels:  # its own exporter
                other["instance"] = f"{other['stack']}-{labels['instance']}"
            values = healthy(name, labels, given["values"], count, step)
            series.append({"series": selector(name, other), "values": values})
    variant["input_series"] = series
    suffixed = _summaries_naming_the_stack()

    exporters = any(parse(s["series"])[0] == BUILD_INFO for s in case["input_series"])

    def change(alertname: str, alert: dict[str, Any]) -> list[dict[str, Any]]:
        if alertname == ABSENT:  # about the whole Prometheus: no target's labels, and none
            return [] if exporters else [alert]  # while the healthy stack's exporters answer
        if alertname in suffixed and "stack" not in alert["exp_labels"]:
            alert["exp_annotations"]["summary"] += f" on {STACK}"
        alert["exp_labels"] = TARGET | alert["exp_labels"]
        return [alert]

    _each_alert(variant, change)
    return variant


def twin(instance: str) -> str:
    """The second replica beside `instance`: the next port on the same host."""
    host, _, port = instance.rpartition(":")
    return f"{host}:{int(port) + 1}"


def _seen_by_twins(text: str) -> str:
    def both(found: re.Match[str]) -> str:
        names = found.group(1).split(", ")
        return "Seen by " + ", ".join(sorted([*names, *map(twin, names)])) + ";"

    return _SEEN_BY.sub(both, text)


def replicas(case: Case) -> Case:
    """The case with every exporter twinned: two replicas exporting the same."""
    variant = _copy(case, "replicas")
    series = []
    for given in case["input_series"]:
        name, labels = parse(given["series"])
        series.append(given)
        if "instance" in labels:
            labels["instance"] = twin(labels["instance"])
            series.append({"series": selector(name, labels), "values": given["values"]})
    variant["input_series"] = series

    def change(_alertname: str, alert: dict[str, Any]) -> list[dict[str, Any]]:
        instance = alert["exp_labels"].get("instance")
        if instance is None:
            annotations = alert["exp_annotations"]
            annotations["description"] = _seen_by_twins(annotations["description"])
            return [alert]
        other = _deep(alert)
        other["exp_labels"]["instance"] = twin(instance)
        other["exp_annotations"] = {
            key: text.replace(instance, twin(instance))
            for key, text in other["exp_annotations"].items()
        }
        return [alert, other]

    _each_alert(variant, change)
    return variant


def _shifted(name: str, samples: Iterable[Sample], by: int) -> list[Sample]:
    if not name.endswith("_timestamp_seconds"):
        return list(samples)
    return [s + by if isinstance(s, float) else s for s in samples]


def renamed_job(job: str) -> str:
    """The job's new name."""
    return f"{job}-v2"


def renamed(case: Case) -> Case:
    """The case under a renamed job, RENAME_AT seconds in, after a healthy old job."""
    variant = _copy(case, "renamed job")
    step = _step(case)
    before = RENAME_AT // step
    series = []
    for given in case["input_series"]:
        name, labels = parse(given["series"])
        if name not in NEVER_HEALTHY:
            old = healthy(name, labels, given["values"], before, step)
            series.append(
                {"series": selector(name, labels), "values": compress(expand(old)[:before])}
            )
        samples = [None] * before + _shifted(name, expand(given["values"]), RENAME_AT)
        new = labels | {"job": renamed_job(labels["job"])}
        series.append({"series": selector(name, new), "values": compress(samples)})
    variant["input_series"] = series
    # ExporterAbsent counts from the last exporter Prometheus saw, whatever its job: the old
    # job's, not the case's start. Its timing is not the case's here; the others' are.
    variant["alert_rule_test"] = [c for c in variant["alert_rule_test"] if c["alertname"] != ABSENT]
    for check in variant["alert_rule_test"]:
        check["eval_time"] = f"{seconds(check['eval_time']) + RENAME_AT}s"

    def change(_alertname: str, alert: dict[str, Any]) -> list[dict[str, Any]]:
        if "job" in alert["exp_labels"]:
            alert["exp_labels"]["job"] = renamed_job(alert["exp_labels"]["job"])
        return [alert]

    _each_alert(variant, change)
    return variant


VARIANTS: Mapping[str, Callable[[Case], Case]] = {
    "stacks": stacks,
    "replicas": replicas,
    "renamed": renamed,
}


def variant_tests(name: str) -> dict[str, Any]:
    """The promtool test file of variant `name`: every case of the base file, varied."""
    base = test_file()
    return {**base, "tests": [VARIANTS[name](case) for case in base["tests"]]}
