"""promtool cases for the setups the first cases did not share with the rules: several stacks
in one job, each with two replicas (a `stack` target label); one API endpoint failing while the
others answer; a scrape pool renamed or removed in Prometheus. Each exporter exports the whole
exposition (every check, the market, freshness, dependencies, the scheduler, `up`), as the
daemon does; then the invariance variants (variants.py) vary these cases too.

- **Two stacks, two replicas each, one job:** stack `eu`'s manifold goes stale on both of its
  exporters: exactly one ManifoldStale, carrying `stack="eu"`, naming the reason and both
  exporters; nothing for `us`, nothing else. `eu`'s Valkey goes unreachable: exactly one
  DependencyDown for `eu`, the checks it blinds held.
- **One endpoint answering 500 for 30 minutes** (the daemon keeps the API up: one endpoint
  failing is not an outage): exactly one page, CannotRead naming the endpoint and the check it
  blinds, resolved within 30 s of the fix.
- **A renamed job:** the old pool's samples stay visible, frozen, for the 5-minute lookback;
  nothing pages (CheckStuck paged once for every paging check). **A removed job:** nothing
  pages while its frozen samples are visible; then ExporterAbsent, alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.kill_switch import KILL_SWITCH_PATH
from quantops_exporter.deploykit.notation import compress, expand, parse, selector
from quantops_exporter.deploykit.rule_tests import (
    FROM_1M,
    PAIRS,
    SPAN,
    ZERO,
    Series,
    _alert,
    _at,
    _check,
    _quiet,
    _running,
    _test,
    build_tests,
    check_state,
    expected_absent,
    expected_cannot_read,
    expected_check_alert,
    expected_down,
    first_read,
    market,
)
from quantops_exporter.deploykit.rules import PREFIX, cannot_read_for, seconds_of
from quantops_exporter.deploykit.week_cases import _stamp, exposition, week_cases
from quantops_exporter.sources.health import Dependency

STACKS = ("eu", "us")
EXPORTERS = ("a:9110", "b:9110")  # the replicas of each stack (instance `<stack>-a:9110`)
OPENED = -7200  # the market opened two hours before the case: past its first hour
NEW_JOB = "sep-ops"
RENAMED_AT = 10  # minutes into the case


def instances(stack: str) -> tuple[str, ...]:
    """The exporters of `stack`."""
    return tuple(f"{stack}-{exporter}" for exporter in EXPORTERS)


def relabel(series: Iterable[Series], **labels: str) -> list[Series]:
    """`series` with `labels` added (or replaced)."""
    out = []
    for given in series:
        name, found = parse(given["series"])
        out.append({"series": selector(name, found | labels), "values": given["values"]})
    return out


def with_values(series: list[Series], name: str, values: str, **labels: str) -> list[Series]:
    """`series` with the values of every `name` series carrying `labels` replaced."""
    out = []
    for given in series:
        found_name, found = parse(given["series"])
        if found_name == name and all(found.get(k) == v for k, v in labels.items()):
            given = {"series": given["series"], "values": values}
        out.append(given)
    return out


def open_exposition(
    instance: str, state: Callable[[Check], list[Series]] | None = None
) -> list[Series]:
    """One exporter's whole exposition while the market is open (opened two hours ago): each
    check as `state` gives it (else passing, run on its cadence), every source fresh."""

    def passing(check: Check) -> list[Series]:
        return check_state(check, ZERO, reason="none", instance=instance)

    def checks(check: Check) -> list[Series]:
        return (state or passing)(check) + _running(check, instance)

    stamps = [
        _stamp(source, f"0+60x{SPAN}", pair, instance)
        for source in ("ws_manifold", "signal_index")
        for pair in PAIRS
    ]
    stamps += [
        _stamp("gates_blob", f"0+60x{SPAN}", "", instance),
        _stamp("candles", f"0+60x{SPAN}", "EUR_USD", instance),
    ]
    return exposition(
        checks, market(opened_at=OPENED, instance=instance), f"1x{SPAN}", stamps, instance
    )


def two_stacks(faulty: Callable[[str], list[Series]]) -> list[Series]:
    """Stack `eu` as `faulty` exports it per exporter, and a healthy stack `us`, two replicas
    each, one job."""
    series: list[Series] = []
    for stack in STACKS:
        for instance in instances(stack):
            exported = faulty(instance) if stack == "eu" else open_exposition(instance)
            series += relabel(exported, stack=stack)
    return series


def on_stack(alert: dict[str, Any], stack: str) -> dict[str, Any]:
    """An expected alert of `stack`: the label, and the summary saying so."""
    alert["exp_labels"]["stack"] = stack
    alert["exp_annotations"]["summary"] += f" on {stack}"  # rules' STACK_SUFFIX, rendered
    return alert


def alone(at: int, alertname: str, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every alert of the rule file silent at `at` but `alertname`, which is `alerts`."""
    quiet = [check for check in _quiet([at]) if check["alertname"] != alertname]
    return [*quiet, _at(at, alertname, alerts)]


def stack_cases() -> list[dict[str, Any]]:
    """Two stacks, two replicas each, one job: a fault of `eu` is one alert carrying it."""
    manifold = _check("manifold_freshness")

    def stale(instance: str) -> list[Series]:
        def state(check: Check) -> list[Series]:
            if check is manifold:
                return check_state(check, FROM_1M, reason="stale", instance=instance)
            return check_state(check, ZERO, reason="none", instance=instance)

        exported = open_exposition(instance, state)
        # EUR_USD's manifold last written 5 minutes before the case: 10 minutes old at 5m.
        return with_values(
            exported,
            "runbook_freshness_last_update_timestamp_seconds",
            f"-300x{SPAN}",
            source="ws_manifold",
            instrument="EUR_USD",
        )

    valkey_readers = [c for c in CHECKS if Dependency.VALKEY in c.dependencies]

    def valkey_down(instance: str) -> list[Series]:
        def state(check: Check) -> list[Series]:
            if check in valkey_readers:
                return check_state(
                    check,
                    FROM_1M,
                    status="error",
                    reason="unreachable",
                    instance=instance,
                    unreadable=[first_read(check, Dependency.VALKEY)],
                )
            return check_state(check, ZERO, reason="none", instance=instance)

        exported = open_exposition(instance, state)
        return with_values(exported, "runbook_dependency_up", f"1 0x{SPAN}", dependency="valkey")

    stale_alert = on_stack(
        expected_check_alert(manifold, "stale", value="600", seen=instances("eu")), "eu"
    )
    return [
        _test(
            "two stacks x two replicas in one job, eu's manifold stale: exactly one "
            "ManifoldStale, carrying stack eu, naming the reason and both exporters",
            two_stacks(stale),
            alone(300, _alert(manifold.name), [stale_alert]),
        ),
        _test(
            "two stacks x two replicas in one job, eu's Valkey unreachable: exactly one "
            "DependencyDown, for eu; the checks it blinds held",
            two_stacks(valkey_down),
            alone(300, f"{PREFIX}DependencyDown", [on_stack(expected_down("valkey"), "eu")]),
        ),
    ]


def endpoint_case() -> dict[str, Any]:
    """/api/kill-switch answers 500 from 1 m to 30 m while every other endpoint answers."""
    kill_switch = _check("kill_switch")
    failing = f"0 1x29 0x{SPAN - 30}"  # from 1 m, through 30 m

    def state(check: Check) -> list[Series]:
        if check is kill_switch:
            return check_state(
                check,
                failing,
                status="error",
                reason="http_error",
                unreadable=[(Dependency.API, KILL_SWITCH_PATH)],
            )
        return check_state(check, ZERO, reason="none")

    page = expected_cannot_read(
        "api", [("kill_switch", "http_error")], [(KILL_SWITCH_PATH, "http_error", "kill_switch")]
    )
    held = seconds_of(cannot_read_for(CHECKS))
    fixed = 31 * 60 + 30  # 30 s after the endpoint answers again
    checks = _quiet([60 + held - 15, fixed])
    for at in (60 + held + 60, 20 * 60, 30 * 60):
        checks += alone(at, f"{PREFIX}CannotRead", [page])
    return _test(
        "one endpoint (/api/kill-switch) answering 500 for 30 minutes, the API answering "
        "otherwise (so up): exactly one page, CannotRead naming the endpoint and the check it "
        "blinds, never DependencyFlapping; resolved within 30 s of the fix",
        open_exposition("quantops:9110", state),
        checks,
    )


def _split(series: list[Series], minutes: int, job: str | None) -> list[Series]:
    """`series` scraped under their job until `minutes`, then (when `job` is given) under
    `job`: the old pool just stops, with no staleness marker, as Prometheus does for a pool it
    no longer has."""
    out = []
    for given in series:
        name, labels = parse(given["series"])
        samples = expand(given["values"])
        out.append({"series": given["series"], "values": compress(samples[:minutes])})
        if job is not None:
            after = [None] * minutes + samples[minutes:]
            out.append({"series": selector(name, labels | {"job": job}), "values": compress(after)})
    return out


def rename_cases() -> list[dict[str, Any]]:
    """A scrape pool renamed, or removed, under a healthy stack."""
    healthy = open_exposition("quantops:9110")
    every = [60 * m for m in range(RENAMED_AT + 1, RENAMED_AT + 16, 2)]
    gone = (RENAMED_AT + 5) * 60  # the old pool's last samples out of the lookback
    return [
        _test(
            f"the job renamed {RENAMED_AT} minutes in: no page, though the old pool's frozen "
            "samples stay visible 5 minutes (CheckStuck paged for every paging check)",
            _split(healthy, RENAMED_AT, NEW_JOB),
            _quiet(every),
        ),
        _test(
            f"the job removed {RENAMED_AT} minutes in: no page while its frozen samples are "
            "visible; then ExporterAbsent, alone",
            _split(healthy, RENAMED_AT, None),
            _quiet([m for m in every if m < gone + 4 * 60])
            + alone(gone + 5 * 60 + 60, f"{PREFIX}ExporterAbsent", [expected_absent()]),
        ),
    ]


def setup_cases() -> list[dict[str, Any]]:
    """Every case of this module."""
    return [*stack_cases(), endpoint_case(), *rename_cases()]


def test_file() -> dict[str, Any]:
    """The promtool test file: the rule tests' cases, the week's, then these."""
    base = build_tests()
    return {**base, "tests": [*base["tests"], *week_cases(), *setup_cases()]}
