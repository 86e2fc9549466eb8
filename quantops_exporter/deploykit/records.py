"""The recording rules the alerts and dashboards share: per exporter (`runbook:`) first, then per
stack (`stack:`, aggregated across replicas), in the order they depend on each other (one group).

Every record keeps every target label (promql.py): per exporter they match one-to-one on all of
them, per stack they aggregate `without (instance)`.

- **Stuck is judged on recent samples only.** A scrape pool removed or renamed in Prometheus gets
  no staleness markers: its last samples stay visible for the 5-minute lookback, frozen, and
  `time() - last_run` grew on them until every paging check looked stuck. A check's age is now
  taken at the scrape that exported it (`timestamp(x) - x`): frozen samples freeze their age.
- **What could not be read is located.** `runbook_check_unreadable` names the dependency, the
  endpoint or key and the reason of each thing a run could not read; a blind check is counted
  against the dependency it could not read (an endpoint of the API, a key of Valkey), not
  against every dependency it reads, so one failing endpoint is one CannotRead however many
  checks read it. A blind check naming nothing (an internal error) counts against the set of
  dependencies it reads, as before.
- **An exporter is a target that exported quantops_exporter_build_info,** remembered while its
  target exists (`up`, any value): no job name is needed, so a renamed job pages nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from quantops_exporter.checks.base import Check
from quantops_exporter.deploykit.promql import (
    BUILD_LABELS,
    across_replicas,
    ignoring,
    regex,
)
from quantops_exporter.deploykit.specs import (
    BEHIND,
    FLAP_CHANGES,
    FRESHNESS_CHECKS,
    STUCK_INTERVALS,
    STUCK_SLACK_SECONDS,
    Server,
    dependency_sets,
    depends_on,
    down_window,
    flap_window,
)
from quantops_exporter.sources.health import Dependency

# What runbook_check_unreadable and the records built on it carry besides the check's labels.
UNREADABLE = ("dependency", "item", "reason", "depends_on")
EXPORTER_UP = "runbook:exporter_up"


def _status(state: str, names: Iterable[str] | None = None) -> str:
    """1 per check whose last status is `state` while expected and enabled, 0 otherwise."""
    selector = f'status="{state}"' + (f',check=~"{regex(names)}"' if names is not None else "")
    return (
        f"(sum without (status) (runbook_check_status{{{selector}}}) == bool 1) "
        "* (runbook_check_expected == bool 1) * (runbook_check_enabled == bool 1)"
    )


def per_exporter(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """The records per exporter (`instance`)."""
    rules: list[dict[str, Any]] = [{"record": "runbook:check_failing", "expr": _status("fail")}]
    # The checks that could not read, labelled with what they read (CannotRead's fallback).
    by_set: dict[str, list[str]] = {}
    for check in checks:
        by_set.setdefault(depends_on(check.dependencies), []).append(check.name)
    for label, names in sorted(by_set.items()):
        rules.append(
            {
                "record": "runbook:check_erroring",
                "expr": _status("error", names),
                "labels": {"depends_on": label},
            }
        )
    rules += [
        {
            # Each thing a check in error (expected, enabled) could not read.
            "record": "runbook:check_unreadable",
            "expr": f"runbook_check_unreadable == 1 and {ignoring(*UNREADABLE)} "
            "runbook:check_erroring == 1",
        },
        {
            # The check's age at the scrape that exported it: a sample Prometheus stopped
            # scraping (a removed or renamed pool) keeps the age it had, it does not grow.
            "record": "runbook:check_stuck",
            "expr": "(timestamp(runbook_check_last_run_timestamp_seconds) - "
            "runbook_check_last_run_timestamp_seconds > bool "
            f"({STUCK_INTERVALS} * runbook_check_interval_seconds + {STUCK_SLACK_SECONDS})) "
            "* (runbook_check_enabled == bool 1)",
        },
        {"record": "runbook:dependency_down", "expr": "runbook_dependency_up == bool 0"},
    ]
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
        f'label_replace(runbook:check_stuck{{check="{check}"}} * '
        f'(runbook_check_expected == bool 1) == 1, "source", "{source.value}", "", "")'
        for source, check in FRESHNESS_CHECKS.items()
    )
    rules += [
        {
            "record": "runbook:checks_failing:count",
            "expr": "sum without (check) (runbook:check_failing)",
        },
        {
            # Instruments whose last-read timestamp was over twice its limit old (at the
            # scrape) while the check that reads the source is stuck and expected: the
            # exporter-stuck safety net.
            "record": "runbook:freshness_stale:count",
            "expr": "count without (instrument) ((timestamp("
            "runbook_freshness_last_update_timestamp_seconds) - "
            "runbook_freshness_last_update_timestamp_seconds > "
            f"{ignoring('instrument')} group_left () "
            f"(2 * runbook_freshness_max_age_seconds)) * {ignoring('instrument', 'check')} "
            f"group_left (check) ({freshness}))",
        },
        {
            "record": EXPORTER_UP,
            "expr": f"up and {ignoring(*BUILD_LABELS)} "
            f"(quantops_exporter_build_info or {EXPORTER_UP})",
        },
    ]
    return rules


def per_stack(checks: Sequence[Check], servers: Sequence[Server]) -> list[dict[str, Any]]:
    """The records per stack: every replica's records aggregated `without (instance)`."""
    rules = [
        {
            "record": "stack:runbook_check_failing:max",
            "expr": across_replicas("max", "runbook:check_failing"),
        },
        {
            "record": "stack:runbook_check_blind:min",
            "expr": across_replicas("min", "runbook:check_erroring"),
        },
        {
            # What checks blind on every replica could not read (on any replica).
            "record": "stack:runbook_check_unreadable:max",
            "expr": f"{across_replicas('max', 'runbook:check_unreadable')} and "
            f"{ignoring(*UNREADABLE)} stack:runbook_check_blind:min == 1",
        },
        {
            # Checks blind on every replica that name nothing they could not read.
            "record": "stack:runbook_check_blind_unlocated:min",
            "expr": f"stack:runbook_check_blind:min == 1 unless {ignoring(*UNREADABLE)} "
            "stack:runbook_check_unreadable:max",
        },
        {
            "record": "stack:runbook_check_stuck_expected:min",
            "expr": across_replicas(
                "min", "runbook:check_stuck * (runbook_check_expected == bool 1)"
            ),
        },
        {
            "record": "stack:runbook_dependency_down:min",
            "expr": across_replicas("min", "runbook:dependency_down:sustained"),
        },
        {
            "record": "stack:runbook_dependency_flapping:min",
            "expr": across_replicas("min", "runbook:dependency_flapping"),
        },
    ]
    return rules + _unreadable(checks)


def explained_by(deps: Iterable[Dependency]) -> str:
    """The regex of the dependencies whose outage explains read errors of `deps`."""
    given = set(deps)
    for dependency in list(given):
        given.update(BEHIND.get(dependency, ()))
    return regex(d.value for d in Dependency if d in given)


def down(deps: Iterable[Dependency]) -> str:
    """1 per stack while a dependency whose outage explains `deps`' read errors is down."""
    return (
        "max without (dependency) "
        f'(stack:runbook_dependency_down:min{{dependency=~"{explained_by(deps)}"}}) == 1'
    )


def _unreadable(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """Per dependency: a check blind on every exporter of the stack could not read it (or,
    naming nothing, reads it alone), and no outage behind it explains that."""
    rules = []
    for label in dependency_sets(checks):
        if "," in label:
            continue
        dependency = Dependency(label)
        located = (
            "count without (check, item, reason) "
            f'(stack:runbook_check_unreadable:max{{dependency="{label}"}})'
        )
        unlocated = (
            "label_replace(count without (check, depends_on) "
            f'(stack:runbook_check_blind_unlocated:min{{depends_on="{label}"}}), '
            f'"dependency", "{label}", "", "")'
        )
        rules.append(
            {
                "record": "stack:runbook_dependency_unreadable",
                "expr": f"({located} or {unlocated}) > bool 0 unless "
                f"{ignoring('dependency')} ({down([dependency])})",
                "labels": {"dependency": label},
            }
        )
    return rules
