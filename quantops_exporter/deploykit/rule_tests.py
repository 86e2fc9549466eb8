"""promtool unit tests for the generated rules, written to deploy/prometheus/tests/ by
`python -m quantops_exporter.deploykit`, run with

    promtool test rules deploy/prometheus/tests/quantops-runbook.test.yml

Expected annotations are rendered here by plain string substitution, independently of
Prometheus's templating, so a template that renders wrongly fails the test.

Every alert has cases: it fires (labels and annotations), it stays silent while not expected
(closed market), while disabled and while a dependency it reads is down for a sustained window;
a fault gives exactly one alert (an `error` is CannotRead, not the check's page; a cause holds
its consequences; a server is one DependencyDown). PreOpenNotReady fires only within its window
after an open, and never beside a page that speaks for its cause.

The week (the warm-up after an open, holidays) is in week_cases.py, the setups the first
cases did not share with the rules (several stacks, one failing endpoint, a renamed job) in
setups.py, and every case's invariance variants in variants.py.

- **HA pair** (`HA: …`): every alert that aggregates across replicas (each check's, the
  dependencies', CannotRead, CheckStuck, PreOpenNotReady) is one alert for two replicas seeing
  one fault; those about one exporter (CheckNotRunning, FreshnessTimestampStale,
  SchedulerMissingRuns, ExporterDown) are one per replica by design, which Alertmanager sends
  as one notification (it groups without `instance`); ExporterAbsent is one per Prometheus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from quantops_exporter.checks.allocation import HEALTH_PATH, STATUS_PATH, WEIGHTS_KEY
from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import (
    CHECKS,
    DEFAULT_RUNBOOK_URL,
    Anchor,
    Section,
)
from quantops_exporter.checks.diagnosis import PROCEDURE, Step
from quantops_exporter.checks.freshness import (
    GATES_BLOB_KEY,
    MANIFOLD_KEY,
    SIGNAL_INDEX_KEY,
)
from quantops_exporter.checks.kill_switch import KILL_SWITCH_KEY, KILL_SWITCH_PATH
from quantops_exporter.checks.pricing import PRICING_PATH
from quantops_exporter.checks.risk import (
    ACCOUNT_PATH,
    ALLOCATION_STATUS_PATH,
    BUDGET_KEY,
    POSITIONS_PATH,
)
from quantops_exporter.checks.thresholds import PREOPEN_READY_WITHIN_SECONDS
from quantops_exporter.checks.trading import TRADING_MODE_PATH
from quantops_exporter.checks.warmup import CANDLES_PATH
from quantops_exporter.deploykit.notation import compress, expand, seconds
from quantops_exporter.deploykit.rules import (
    ALERTS,
    DEFAULT_JOB,
    DEFAULT_SERVERS,
    HOLDS,
    PREFIX,
    PREOPEN_WINDOW_SECONDS,
    STUCK_INTERVALS,
    STUCK_SLACK_SECONDS,
    Hold,
    build_rules,
    cannot_read_for,
    depends_on,
    duration,
    for_duration,
    seconds_of,
)
from quantops_exporter.sources.health import Dependency

INSTANCE = "quantops:9110"
REPLICAS = ("quantops-a:9110", "quantops-b:9110")
JOB = {"job": DEFAULT_JOB}
PRE_OPEN_URL = f"{DEFAULT_RUNBOOK_URL}#{Anchor.PRE_OPEN.value}"
WEEKEND_URL = f"{DEFAULT_RUNBOOK_URL}#{Anchor.WEEKEND.value}"
# An expected runbook_url that depends on the market at the evaluation (rules.runbook_link):
# `_test` puts the Weekend section while the case's market is closed or warming up, else this.
BY_MARKET = "<by the market>"
SPAN = 60  # samples per series (at 1 m: an hour)
FLAT = f"1x{SPAN}"
ZERO = f"0x{SPAN}"
FROM_1M = f"0 1x{SPAN}"  # 0 at t=0, 1 from t=1m
Series = dict[str, str]
# The reason of each alerted check's typical `fail`, as the cases inject it.
FAULT_REASON: Mapping[str, str] = {
    "kill_switch": "mismatch",
    "trading_mode": "unexpected_value",
    "manifold_freshness": "missing",
    "signal_freshness": "stale",
    "gates_blob_freshness": "stale",
    "gates_eligible": "threshold",
    "gates_sanity": "threshold",
    "margin_utilisation": "threshold",
    "allocator_topk": "mismatch",
    "position_caps": "threshold",
    "allocator_cadence": "mismatch",
    "span_integrity": "unexpected_value",
    "allocation_status": "mismatch",
    "candles": "threshold",
    "alloc_budget": "missing",
    "allocation_weights": "missing",
    "spread_guard": "threshold",
    "no_positions_diagnosis": "unexpected_value",
    "exposure_within_cap": "threshold",
}


# What each check reads, first what its typical read error names (runbook_check_unreadable):
# an endpoint's path, or a Valkey key with the first configured instrument.
READS: Mapping[str, tuple[tuple[Dependency, str], ...]] = {
    "valkey_ping": ((Dependency.VALKEY, "PING"),),
    "kill_switch": ((Dependency.API, KILL_SWITCH_PATH), (Dependency.VALKEY, KILL_SWITCH_KEY)),
    "trading_mode": ((Dependency.API, TRADING_MODE_PATH),),
    "manifold_freshness": ((Dependency.VALKEY, MANIFOLD_KEY.format(instrument="EUR_USD")),),
    "signal_freshness": ((Dependency.VALKEY, SIGNAL_INDEX_KEY.format(instrument="EUR_USD")),),
    "gates_blob_freshness": ((Dependency.VALKEY, GATES_BLOB_KEY),),
    "gates_eligible": ((Dependency.STACK_METRICS, "/metrics"),),
    "gates_sanity": ((Dependency.VALKEY, GATES_BLOB_KEY),),
    "sessions_open": (),
    "margin_utilisation": ((Dependency.API, ACCOUNT_PATH),),
    "allocator_topk": ((Dependency.STACK_METRICS, "/metrics"),),
    "position_caps": ((Dependency.API, POSITIONS_PATH), (Dependency.VALKEY, BUDGET_KEY)),
    "allocator_cadence": ((Dependency.ALLOCATOR, STATUS_PATH),),
    "span_integrity": ((Dependency.STACK_METRICS, "/metrics"),),
    "allocation_status": (
        (Dependency.API, ALLOCATION_STATUS_PATH),
        (Dependency.STACK_METRICS, "/metrics"),
    ),
    "candles": ((Dependency.API, CANDLES_PATH),),
    "allocator_health": ((Dependency.ALLOCATOR, STATUS_PATH), (Dependency.API, HEALTH_PATH)),
    "alloc_budget": ((Dependency.VALKEY, BUDGET_KEY),),
    "allocation_weights": ((Dependency.VALKEY, WEIGHTS_KEY),),
    "spread_guard": ((Dependency.API, PRICING_PATH),),
    "no_positions_diagnosis": (
        (Dependency.API, POSITIONS_PATH),
        (Dependency.STACK_METRICS, "/metrics"),
        (Dependency.VALKEY, BUDGET_KEY),
    ),
    "exposure_within_cap": ((Dependency.API, ACCOUNT_PATH),),
}


def first_read(check: Check, *among: Dependency) -> tuple[Dependency, str]:
    """What `check` reads first (of `among`, when given): what its read error names."""
    return next(r for r in READS[check.name] if not among or r[0] in among)


def _series(name: str, values: str, instance: str = INSTANCE, **labels: str) -> Series:
    inner = ",".join(f'{k}="{v}"' for k, v in {**labels, "instance": instance, **JOB}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _check(name: str) -> Check:
    return next(c for c in CHECKS if c.name == name)


def _alert(name: str) -> str:
    return PREFIX + ALERTS[name].alert


def check_state(
    check: Check,
    values: str = FROM_1M,
    *,
    status: str = "fail",
    reason: str = "stale",
    expected: str = FLAT,
    enabled: str = FLAT,
    instance: str = INSTANCE,
    unreadable: Sequence[tuple[Dependency, str]] = (),
) -> list[Series]:
    """One check's exported state: `status` (fail or error) as `values`, with `reason`; in
    error, the (dependency, item) pairs it names as unreadable (runbook_check_unreadable)."""
    other = "error" if status == "fail" else "fail"
    name = check.name
    return [
        _series("runbook_check_status", values, instance, check=name, status=status),
        _series("runbook_check_status", ZERO, instance, check=name, status=other),
        _series("runbook_check_expected", expected, instance, check=name),
        _series("runbook_check_enabled", enabled, instance, check=name),
        _series("runbook_check_failure_reason", values, instance, check=name, reason=reason),
        *[
            _series(
                "runbook_check_unreadable",
                _while_one(values),  # exported only while it could not read
                instance,
                check=name,
                dependency=dependency.value,
                item=item,
                reason=reason,
            )
            for dependency, item in unreadable
        ],
    ]


def exporter_target(values: str = FLAT, instance: str = INSTANCE) -> list[Series]:
    """An exporter target: Prometheus's `up` as `values`, and quantops_exporter_build_info
    while it is scraped (its samples stop at a failed scrape)."""
    return [
        _series("up", values, instance),
        _series(
            "quantops_exporter_build_info",
            _while_one(values),
            instance,
            version="test",
            revision="test",
        ),
    ]


def _while_one(values: str) -> str:
    """1 at each sample where `values` is 1, no sample elsewhere."""
    return compress([1.0 if v == 1.0 else None for v in expand(values)])


def dependencies_up(
    dependencies: Iterable[Dependency], values: str = FLAT, instance: str = INSTANCE
) -> list[Series]:
    """runbook_dependency_up of each dependency as `values`."""
    return [
        _series("runbook_dependency_up", values, instance, dependency=d.value) for d in dependencies
    ]


def expected_check_alert(
    check: Check, reason: str = "stale", value: str = "n/a", seen: Sequence[str] = (INSTANCE,)
) -> dict[str, Any]:
    """The check's alert as the rule should render it, by substitution on the spec."""
    spec = ALERTS[check.name]
    link = BY_MARKET if spec.weekend else f"{DEFAULT_RUNBOOK_URL}#{check.anchor}"
    description = (
        f"{spec.summary} ({check.runbook}). Reason: {reason}. {spec.remedy} Seen by "
        f"{', '.join(seen)}; the check's summary at /api/v1/checks says more."
    )
    if spec.value:
        description += f" Current value: {value}."
    return {
        "exp_labels": {
            "severity": spec.severity.value,
            "check": check.name,
            "depends_on": depends_on(check.dependencies),
            **JOB,
        },
        "exp_annotations": {
            "summary": spec.summary,
            "description": description,
            "runbook_url": link,
            "severity_reason": spec.why,
        },
    }


def expected_cannot_read(
    dependency: str,
    blind: Iterable[tuple[str, str]],
    unreadable: Iterable[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    """CannotRead for `dependency` (a dependency, a server's or a set's comma list), listing
    the blind (check, reason) pairs; `unreadable` are the (item, reason, check) the checks
    named, the summary's subject (the blind checks naming nothing follow, as check (reason))."""
    blind = sorted(blind)
    located = sorted(unreadable)
    named = {check for _item, _reason, check in located}
    things = []
    for item, reason in dict.fromkeys((item, reason) for item, reason, _check in located):
        checks = sorted(c for i, r, c in located if (i, r) == (item, reason))
        things.append(f"{item} ({reason}) for {', '.join(checks)}")
    things += [f"{check} ({reason})" for check, reason in blind if check not in named]
    listed = ", ".join(f"{check} ({reason})" for check, reason in blind)
    return {
        "exp_labels": {"severity": "page", "check": "dependency", "dependency": dependency, **JOB},
        "exp_annotations": {
            "summary": f"Cannot read {dependency}: {'; '.join(things)}",
            "description": f"The checks reading {dependency} could not judge (status error) on "
            f"every exporter of the stack: {listed}. Nothing is known about what they watch, so "
            "their own alerts cannot fire: a blind spot over paging checks. The dependency "
            "answers (it is not down) but not in a form the checks can read: fix the answer "
            "(the summary names the endpoint or key), or the exporter's access to it.",
            "runbook_url": BY_MARKET,
        },
    }


def expected_down(dependency: str) -> dict[str, Any]:
    """DependencyDown for `dependency` (a dependency or a server's comma list)."""
    return {
        "exp_labels": {"severity": "page", "check": "dependency", "dependency": dependency, **JOB},
        "exp_annotations": {
            "summary": f"{dependency} unreachable",
            "description": f"No request to {dependency} has succeeded for a sustained window "
            "(refused, reset, hung or 5xx) on any exporter of the stack; a comma list is one "
            "server serving several. The alerts of the checks that read it, and CannotRead and "
            "DependencyFlapping, are held back until it answers again.",
            "runbook_url": BY_MARKET,
        },
    }


def expected_flapping(dependency: str) -> dict[str, Any]:
    """DependencyFlapping for `dependency`."""
    return {
        "exp_labels": {"severity": "page", "check": "dependency", "dependency": dependency, **JOB},
        "exp_annotations": {
            "summary": f"{dependency} answers intermittently",
            "description": f"Requests to {dependency} keep alternating between answered and "
            "failed (refused, hung or 5xx) on every endpoint: the server itself comes and goes "
            "(one endpoint failing beside answering ones is not this, but CannotRead naming "
            "it). Checks reading it judge and error by turns, so their own alerts cannot hold; "
            "see runbook_dependency_endpoint_up and the exporter's log.",
            "runbook_url": BY_MARKET,
        },
    }


def servers_down(dependencies: Iterable[Dependency]) -> list[str]:
    """The DependencyDown `dependency` labels when exactly `dependencies` are down."""
    down = set(dependencies)
    labels = []
    for server in DEFAULT_SERVERS:
        if set(server) <= down:
            labels.append(depends_on(server))
        else:
            labels += [d.value for d in server if d in down]
    return sorted(labels)


def _test(
    name: str, series: list[Series], checks: list[dict[str, Any]], interval: str = "1m"
) -> dict[str, Any]:
    """A promtool test group; `name` says what it proves (promtool prints it on failure). An
    expected runbook_url left to the market (BY_MARKET) becomes the Weekend section where the
    case's market is closed or warming up at that evaluation, the Pre-Open Spin-Up elsewhere."""
    resolved = []
    for check in checks:
        at = seconds(check["eval_time"])
        alerts = []
        for alert in check["exp_alerts"]:
            alert = {key: dict(value) for key, value in alert.items()}
            if alert["exp_annotations"].get("runbook_url") == BY_MARKET:
                instance = alert["exp_labels"].get("instance")
                resting = _resting(series, seconds(interval), at, instance)
                alert["exp_annotations"]["runbook_url"] = WEEKEND_URL if resting else PRE_OPEN_URL
            alerts.append(alert)
        resolved.append({**check, "exp_alerts": alerts})
    return {"name": name, "interval": interval, "input_series": series, "alert_rule_test": resolved}


def _resting(series: list[Series], step: int, at: int, instance: str | None) -> bool:
    """Whether the market the case's exporters (or `instance`) last exported within the hour
    before `at` is closed or opened less than the warm-up ago (as rules.runbook_link asks)."""
    latest: dict[tuple[str, str], float] = {}
    for given in series:
        found = re.fullmatch(r"runbook_market_(\w+)_timestamp_seconds\{(.*)\}", given["series"])
        if found is None or (instance is not None and f'instance="{instance}"' not in found[2]):
            continue
        for index, sample in enumerate(expand(given["values"])):
            if isinstance(sample, float) and at - 3600 < index * step <= at:
                latest[(found[2], found[1])] = sample
    for labels in {labels for labels, _name in latest}:
        moments = {name: moment for (where, name), moment in latest.items() if where == labels}
        if moments.get("next_open", math.inf) < moments.get("next_close", math.inf):
            return True
        if at - moments.get("last_open", -math.inf) < PREOPEN_READY_WITHIN_SECONDS:
            return True
    return False


def _at(eval_time: str | int, alertname: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    when = f"{eval_time}s" if isinstance(eval_time, int) else eval_time
    return {"eval_time": when, "alertname": alertname, "exp_alerts": alerts}


def _cannot_read_one(
    eval_time: str | int, dependency: str, check: str, reason: str, item: str
) -> dict[str, Any]:
    """At `eval_time`, the one CannotRead of a single check blind on a single item it names."""
    blind = expected_cannot_read(dependency, [(check, reason)], [(item, reason, check)])
    return _at(eval_time, f"{PREFIX}CannotRead", [blind])


def _settled(check: Check) -> int:
    """When a fault from t=1m has held the check's alert and CannotRead long enough."""
    hold = max(
        seconds_of(for_duration(check, ALERTS[check.name])), seconds_of(cannot_read_for(CHECKS))
    )
    return 60 + hold + 60


def check_cases(check: Check) -> list[dict[str, Any]]:
    """Fires on fail; an error is CannotRead, not this page; silent while closed, disabled or
    while a dependency it reads is down."""
    alert = _alert(check.name)
    deps = list(check.dependencies)
    up = dependencies_up(deps)
    settled = _settled(check)
    fires = _test(
        f"{alert} fires when {check.name} fails while expected",
        check_state(check) + up,
        [
            _at("30s", alert, []),
            _at(
                60 + seconds_of(for_duration(check, ALERTS[check.name])) + 60,
                alert,
                [expected_check_alert(check)],
            ),
        ],
    )
    dependency, item = first_read(check)
    blind = [(check.name, "bad_payload")]
    error = _test(
        f"{check.name} in error: no {alert}, one CannotRead for the {dependency} {item} it "
        "could not read",
        check_state(check, status="error", reason="bad_payload", unreadable=[(dependency, item)])
        + up,
        [
            _at(settled, alert, []),
            _at(
                settled,
                f"{PREFIX}CannotRead",
                [
                    expected_cannot_read(
                        dependency.value, blind, [(item, "bad_payload", check.name)]
                    )
                ],
            ),
            _at(settled, f"{PREFIX}DependencyDown", []),
        ],
    )
    unlocated = _test(
        f"{check.name} in error naming nothing it could not read (an internal error): one "
        "CannotRead for everything it reads",
        check_state(check, status="error", reason="internal_error") + up,
        [
            _at(settled, alert, []),
            _at(
                settled,
                f"{PREFIX}CannotRead",
                [expected_cannot_read(depends_on(deps), [(check.name, "internal_error")])],
            ),
        ],
    )
    closed = _test(
        f"{alert} stays silent while {check.name} fails but is not expected (market closed)",
        check_state(check, expected=ZERO) + up,
        [_at(settled, alert, [])],
    )
    closed_error = _test(
        f"CannotRead stays silent while {check.name} cannot read but is not expected",
        check_state(check, status="error", reason="bad_payload", expected=ZERO) + up,
        [_at(settled, f"{PREFIX}CannotRead", []), _at(settled, alert, [])],
    )
    disabled = _test(
        f"{alert} stays silent while {check.name} is disabled (its last verdict kept)",
        check_state(check, enabled=ZERO) + up,
        [_at(settled, alert, [])],
    )
    cases = [fires, error, unlocated, closed, closed_error, disabled]
    if deps:
        cases.append(
            _test(
                f"{alert} held while what {check.name} reads is down: DependencyDown speaks",
                check_state(check, reason="unreachable") + dependencies_up(deps, f"1 0x{SPAN}"),
                [
                    _at(settled, alert, []),
                    _at(
                        settled,
                        f"{PREFIX}DependencyDown",
                        [expected_down(label) for label in servers_down(deps)],
                    ),
                ],
            )
        )
    return cases


def value_case() -> dict[str, Any]:
    """The description shows the current value, computed for the alert's own stack."""
    manifold = _check("manifold_freshness")
    stamp = _series(
        "runbook_freshness_last_update_timestamp_seconds",
        f"0x{SPAN}",
        source="ws_manifold",
        instrument="EUR_USD",
    )
    return _test(
        "the description renders the manifold's age",
        [*check_state(manifold), *dependencies_up(manifold.dependencies), stamp],
        [_at("3m", _alert(manifold.name), [expected_check_alert(manifold, value="180")])],
    )


def flapping_check_case() -> dict[str, Any]:
    """Failing for 15 s at a time, shorter than the 30 s `for`: silent."""
    manifold = _check("manifold_freshness")
    alternating = " ".join(["1", "0"] * 10)
    return _test(
        "a check failing for less than its for: stays silent",
        check_state(manifold, alternating) + dependencies_up(manifold.dependencies),
        [_at(15 * n, _alert(manifold.name), []) for n in range(1, 20)],
        interval="15s",
    )


def ha_cases() -> list[dict[str, Any]]:
    """Two replicas of the exporter against one stack: one alert per fault, for every check's
    alert (they aggregate by job and stack); one replica seeing it is enough, one cut off from
    what it reads neither pages nor holds."""
    trading = _check("trading_mode")
    alert = _alert(trading.name)
    a, b = REPLICAS
    per_check = []
    for check in (c for c in CHECKS if c.name in ALERTS):
        reason = FAULT_REASON[check.name]
        on_both = [
            *check_state(check, instance=a, reason=reason),
            *check_state(check, instance=b, reason=reason),
            *dependencies_up(check.dependencies, instance=a),
            *dependencies_up(check.dependencies, instance=b),
        ]
        per_check.append(
            _test(
                f"HA: two replicas seeing {check.name} fail give one {_alert(check.name)} "
                "naming both",
                on_both,
                [
                    _at(
                        60 + seconds_of(for_duration(check, ALERTS[check.name])) + 60,
                        _alert(check.name),
                        [expected_check_alert(check, reason, seen=REPLICAS)],
                    )
                ],
            )
        )
    one = [
        *check_state(trading, instance=a, reason="unexpected_value"),
        *check_state(trading, ZERO, instance=b, reason="none"),
        *dependencies_up(trading.dependencies, instance=a),
        *dependencies_up(trading.dependencies, instance=b),
    ]
    partitioned = [  # replica a cannot reach the API; b reads it and sees the fault
        *check_state(trading, ZERO, instance=a, reason="unreachable"),
        *check_state(trading, instance=b, reason="unexpected_value"),
        *dependencies_up(trading.dependencies, f"1 0x{SPAN}", instance=a),
        *dependencies_up(trading.dependencies, instance=b),
    ]
    at = 60 + seconds_of(for_duration(trading, ALERTS[trading.name])) + 60
    return [
        *per_check,
        _test(
            "HA: one replica seeing the fault is enough, still one alert",
            one,
            [_at(at, alert, [expected_check_alert(trading, "unexpected_value", seen=(a,))])],
        ),
        _test(
            "HA: one replica cut off from the API neither pages DependencyDown nor holds the page",
            partitioned,
            [
                _at(at, alert, [expected_check_alert(trading, "unexpected_value", seen=(b,))]),
                _at(at, f"{PREFIX}DependencyDown", []),
            ],
        ),
    ]


def dependency_cases() -> list[dict[str, Any]]:
    """Sustained down, one server, flapping, cascades."""
    trading = _check("trading_mode")
    gates = _check("gates_eligible")
    manifold = _check("manifold_freshness")
    backend = [Dependency.API, Dependency.STACK_METRICS]
    flap_15s = " ".join(["1", "0"] * 60)  # every scrape a different answer, for 15 minutes
    up_15s = "1x120"
    return [
        _test(
            "one server (API and its /metrics) down: one DependencyDown, no check page",
            check_state(trading, reason="unreachable")
            + check_state(gates, reason="unreachable")
            + dependencies_up(backend, f"1 0x{SPAN}"),
            [
                _at("1m30s", f"{PREFIX}DependencyDown", []),
                _at("5m", f"{PREFIX}DependencyDown", [expected_down("api,stack_metrics")]),
                _at("5m", _alert(trading.name), []),
                _at("5m", _alert(gates.name), []),
                _at("5m", f"{PREFIX}DependencyFlapping", []),
            ],
        ),
        _test(
            "only /metrics down: DependencyDown names it alone",
            dependencies_up([Dependency.API])
            + dependencies_up([Dependency.STACK_METRICS], f"1 0x{SPAN}"),
            [_at("5m", f"{PREFIX}DependencyDown", [expected_down("stack_metrics")])],
        ),
        _test(
            "a flapping API cannot hold a page back: the check pages, the API pages once",
            check_state(trading, "0 " + " ".join(["1"] * 119), reason="unexpected_value")
            + dependencies_up([Dependency.API], flap_15s)
            + dependencies_up([Dependency.STACK_METRICS], up_15s),
            [
                _at(
                    "3m", _alert(trading.name), [expected_check_alert(trading, "unexpected_value")]
                ),
                _at("1m", f"{PREFIX}DependencyFlapping", []),
                _at("5m", f"{PREFIX}DependencyFlapping", [expected_flapping("api")]),
                _at("10m", f"{PREFIX}DependencyDown", []),
            ],
            interval="15s",
        ),
        _test(
            "a Valkey outage explains the API's partial 5xx: only DependencyDown valkey",
            dependencies_up([Dependency.VALKEY], "1 " + " ".join(["0"] * 119))
            + dependencies_up([Dependency.API], flap_15s)
            + dependencies_up([Dependency.STACK_METRICS], up_15s)
            + check_state(
                manifold, "0 " + " ".join(["1"] * 119), status="error", reason="unreachable"
            )
            + check_state(  # the backend answers 500 where it needs Valkey
                trading, "0 " + " ".join(["1"] * 119), status="error", reason="http_error"
            ),
            [
                _at("10m", f"{PREFIX}DependencyDown", [expected_down("valkey")]),
                _at("10m", f"{PREFIX}DependencyFlapping", []),
                _at("10m", f"{PREFIX}CannotRead", []),
            ],
            interval="15s",
        ),
        _test(
            "a single failed request is not an outage",
            dependencies_up([Dependency.VALKEY], "1x8 0 1x100"),
            [_at(15 * n, f"{PREFIX}DependencyDown", []) for n in range(1, 40)]
            + [_at("10m", f"{PREFIX}DependencyFlapping", [])],
            interval="15s",
        ),
    ]


def _blind(
    checks: Iterable[Check], reason: str, *among: Dependency, instance: str = INSTANCE
) -> tuple[list[Series], list[tuple[str, str]], list[tuple[str, str, str]]]:
    """`checks` in error for `reason`, each naming the first thing it reads (of `among`): their
    series, and CannotRead's (check, reason) and (item, reason, check) lists."""
    series: list[Series] = []
    blind, located = [], []
    for check in checks:
        dependency, item = first_read(check, *among)
        series += check_state(
            check, status="error", reason=reason, instance=instance, unreadable=[(dependency, item)]
        )
        blind.append((check.name, reason))
        located.append((item, reason, check.name))
    return series, blind, located


def cannot_read_cases() -> list[dict[str, Any]]:
    """Garbage from the API is one CannotRead, not a page per check, naming each endpoint and
    the checks it blinds; a check names what it could not read (or, naming nothing, everything
    it reads); closed markets and outages keep it silent."""
    api_readers = [c for c in CHECKS if Dependency.API in c.dependencies]
    kill_switch = _check("kill_switch")
    manifold = _check("manifold_freshness")
    garbage, api_blind, api_items = _blind(api_readers, "bad_payload", Dependency.API)
    garbage += dependencies_up(Dependency)
    settled = 60 + seconds_of(cannot_read_for(CHECKS)) + 60
    backend = (Dependency.API, Dependency.STACK_METRICS)
    backend_readers = [c for c in CHECKS if set(c.dependencies) & set(backend)]
    whole_server, server_blind, server_items = _blind(backend_readers, "bad_payload", *backend)
    whole_server += dependencies_up(Dependency)
    endpoint = [(Dependency.API, KILL_SWITCH_PATH)]
    return [
        _test(
            "the backend answers HTML on the API and /metrics: one CannotRead for the server, "
            "naming every endpoint",
            whole_server,
            [
                _at(
                    settled,
                    f"{PREFIX}CannotRead",
                    [expected_cannot_read("api,stack_metrics", server_blind, server_items)],
                ),
                _at(settled, f"{PREFIX}DependencyDown", []),
            ],
        ),
        _test(
            "the API answers HTML: one CannotRead api naming each endpoint and the checks it "
            "blinds, no check page, no other CannotRead",
            garbage,
            [
                _at(
                    settled,
                    f"{PREFIX}CannotRead",
                    [expected_cannot_read("api", api_blind, api_items)],
                ),
                *[_at(settled, _alert(c.name), []) for c in api_readers if c.name in ALERTS],
                _at(settled, f"{PREFIX}DependencyDown", []),
            ],
        ),
        _test(
            "only the kill switch cannot read /api/kill-switch: one CannotRead for the API "
            "naming the endpoint",
            check_state(kill_switch, status="error", reason="http_error", unreadable=endpoint)
            + dependencies_up(kill_switch.dependencies),
            [
                _at("2m", f"{PREFIX}CannotRead", []),
                _cannot_read_one(settled, "api", "kill_switch", "http_error", KILL_SWITCH_PATH),
            ],
        ),
        _test(
            "a check that cannot read while Valkey is down: DependencyDown only",
            check_state(
                manifold,
                status="error",
                reason="unreachable",
                unreadable=[first_read(manifold)],
            )
            + dependencies_up(manifold.dependencies, f"1 0x{SPAN}"),
            [
                _at(settled, f"{PREFIX}CannotRead", []),
                _at(settled, f"{PREFIX}DependencyDown", [expected_down("valkey")]),
            ],
        ),
        _test(
            "HA: CannotRead needs every replica blind",
            check_state(
                manifold,
                status="error",
                reason="bad_payload",
                instance=REPLICAS[0],
                unreadable=[first_read(manifold)],
            )
            + check_state(manifold, instance=REPLICAS[1])
            + dependencies_up(manifold.dependencies, instance=REPLICAS[0])
            + dependencies_up(manifold.dependencies, instance=REPLICAS[1]),
            [
                _at(settled, f"{PREFIX}CannotRead", []),
                _at(
                    settled,
                    _alert(manifold.name),
                    [expected_check_alert(manifold, seen=(REPLICAS[1],))],
                ),
            ],
        ),
    ]


def _hold_series(hold: Hold) -> list[Series]:
    """Both checks of `hold` failing, with the diagnosis step and reason the hold names."""
    held, cause = _check(hold.check), _check(hold.cause)
    series = check_state(held, reason=hold.reason.value if hold.reason else "missing")
    series += check_state(cause, reason="unexpected_value")
    series += dependencies_up(
        d for d in Dependency if d in held.dependencies or d in cause.dependencies
    )
    if hold.step is not None:
        series += [
            _series(
                "runbook_diagnosis_step",
                FROM_1M if step is hold.step else ZERO,
                procedure=PROCEDURE,
                step=step.value,
            )
            for step in Step
        ]
    return series


def hold_cases() -> list[dict[str, Any]]:
    """One page per cause: each hold keeps the consequence silent while the cause speaks."""
    cases = []
    for hold in HOLDS:
        held, cause = _check(hold.check), _check(hold.cause)
        at = max(_settled(held), _settled(cause))
        cause_reason = "unexpected_value"
        cases.append(
            _test(
                f"{_alert(hold.check)} held while {hold.cause} fails: {hold.why}",
                _hold_series(hold),
                [
                    _at(at, _alert(hold.check), []),
                    _at(at, _alert(hold.cause), [expected_check_alert(cause, cause_reason)]),
                ],
            )
        )
    exposure, status = _check("exposure_within_cap"), _check("allocation_status")
    at = max(_settled(exposure), _settled(status))
    off_top_k = (
        check_state(status, reason="mismatch")
        + check_state(exposure, reason="threshold")
        + dependencies_up([Dependency.API, Dependency.STACK_METRICS])
    )
    cases.append(
        _test(
            "off-Top-K weights are a different cause from exposure: both alerts",
            off_top_k,
            [
                _at(at, _alert(status.name), [expected_check_alert(status, "mismatch")]),
                _at(at, _alert(exposure.name), [expected_check_alert(exposure, "threshold")]),
            ],
        )
    )
    diagnosis, kill_switch = _check("no_positions_diagnosis"), _check("kill_switch")
    other_step = [  # the kill switch fails, but the diagnosis stops at another step: both page
        *check_state(diagnosis, reason="unexpected_value"),
        *check_state(kill_switch, reason="mismatch"),
        *dependencies_up(diagnosis.dependencies),
        *[
            _series(
                "runbook_diagnosis_step",
                FROM_1M if step is Step.RECONCILE else ZERO,
                procedure=PROCEDURE,
                step=step.value,
            )
            for step in Step
        ],
    ]
    at = max(_settled(diagnosis), _settled(kill_switch))
    cases.append(
        _test(
            "the diagnosis stopping at another step than the failing check's still pages",
            other_step,
            [
                _at(
                    at,
                    _alert(diagnosis.name),
                    [expected_check_alert(diagnosis, "unexpected_value")],
                ),
                _at(at, _alert(kill_switch.name), [expected_check_alert(kill_switch, "mismatch")]),
            ],
        )
    )
    return cases


def _stuck(
    check: Check,
    *,
    failing: str = ZERO,
    expected: str = FLAT,
    enabled: str = FLAT,
    instance: str = INSTANCE,
    reason: str = "none",
) -> list[Series]:
    """A check whose last run stopped at t=0 (its last verdict ok, or failing as given, for
    `reason`)."""
    return [
        _series("runbook_check_last_run_timestamp_seconds", ZERO, instance, check=check.name),
        _series(
            "runbook_check_interval_seconds",
            f"{check.interval:g}x{SPAN}",
            instance,
            check=check.name,
        ),
        *check_state(
            check, failing, reason=reason, expected=expected, enabled=enabled, instance=instance
        ),
    ]


def _running(check: Check, instance: str = INSTANCE) -> list[Series]:
    """A check that runs every minute (its last run follows the clock)."""
    return [
        _series(
            "runbook_check_last_run_timestamp_seconds", f"0+60x{SPAN}", instance, check=check.name
        ),
        _series(
            "runbook_check_interval_seconds",
            f"{check.interval:g}x{SPAN}",
            instance,
            check=check.name,
        ),
    ]


def _stamps(
    source: str,
    limit: float,
    instruments: Sequence[str],
    values: str = ZERO,
    instance: str = INSTANCE,
) -> list[Series]:
    """Freshness timestamps of `instruments` as `values` (stuck at 0 unless given), and the
    source's limit."""
    return [
        _series(
            "runbook_freshness_last_update_timestamp_seconds",
            values,
            instance,
            source=source,
            instrument=instrument,
        )
        for instrument in instruments
    ] + [_series("runbook_freshness_max_age_seconds", f"{limit:g}x{SPAN}", instance, source=source)]


def expected_stuck(check: str) -> dict[str, Any]:
    """CheckStuck for `check`."""
    return {
        "exp_labels": {"severity": "page", "check": check, **JOB},
        "exp_annotations": {
            "summary": f"Check {check} has stopped running: its page cannot fire",
            "description": f"The check's last run is more than {STUCK_INTERVALS} intervals "
            f"(+{STUCK_SLACK_SECONDS} s) old on every exporter of the stack while it is "
            "expected: what it watches is not being judged, and its last verdict is all the "
            "alerts know. Look at the exporter's scheduler (quantops_exporter_scheduler_* "
            "metrics, its log) and restart it.",
            "runbook_url": BY_MARKET,
        },
    }


def expected_not_running(check: str, instance: str = INSTANCE) -> dict[str, Any]:
    """CheckNotRunning for `check` on `instance`."""
    return {
        "exp_labels": {"severity": "ticket", "check": check, "instance": instance, **JOB},
        "exp_annotations": {
            "summary": f"Check {check} has stopped running on {instance}",
            "description": f"The check's last run is more than {STUCK_INTERVALS} intervals "
            f"(+{STUCK_SLACK_SECONDS} s) old: this exporter's scheduler is stuck or overloaded.",
            "runbook_url": BY_MARKET,
        },
    }


def expected_freshness(
    source: str, check: str, count: int, instance: str = INSTANCE
) -> dict[str, Any]:
    """FreshnessTimestampStale for `source` (judged by `check`) with `count` instruments, on
    `instance`."""
    return {
        "exp_labels": {
            "severity": "ticket",
            "check": check,
            "source": source,
            "instance": instance,
            **JOB,
        },
        "exp_annotations": {
            "summary": f"{check} stopped running on {instance}: its {source} timestamps are "
            "over twice their limit old",
            "description": f"{count} {source} instrument(s) were last read with a timestamp "
            f"more than twice the configured limit old, and {check} has not run since: this "
            "exporter is stuck, so whether the data is fresh now is not known. Computed from "
            "exported timestamps, so it fires even if the exporter's checks stopped updating.",
            "runbook_url": BY_MARKET,
        },
    }


def _stuck_pages_at(check: Check, scrape_every: int = 60) -> int:
    """When CheckStuck pages for `check` stopped at t=0, scraped every `scrape_every` seconds:
    the first scrape exporting it older than the limit (its age is taken at the scrape, not at
    the evaluation), then its 30 s `for:`."""
    limit = STUCK_INTERVALS * check.interval + STUCK_SLACK_SECONDS
    first = (int(limit) // scrape_every + 1) * scrape_every
    return first + 30


def stuck_cases() -> list[dict[str, Any]]:
    """A stuck check pages once (paging checks) or tickets once; disabled, it says nothing."""
    manifold, candles, topk = (
        _check("manifold_freshness"),
        _check("candles"),
        _check("allocator_topk"),
    )
    pairs = ("EUR_USD", "GBP_USD")
    stuck_at = _stuck_pages_at(manifold)
    silent = [f"{PREFIX}CheckNotRunning", f"{PREFIX}FreshnessTimestampStale"]
    return [
        _test(
            "a stuck paging check pages promptly as CheckStuck, and only that",
            _stuck(manifold) + _stamps("ws_manifold", 30, pairs),
            [
                _at(stuck_at - 15, f"{PREFIX}CheckStuck", []),
                _at(stuck_at, f"{PREFIX}CheckStuck", [expected_stuck(manifold.name)]),
                *[_at("20m", name, []) for name in silent],
                _at("20m", f"{PREFIX}CheckStuck", [expected_stuck(manifold.name)]),
                _at("20m", _alert(manifold.name), []),
            ],
        ),
        _test(
            "a stuck check while not expected: a ticket, no page",
            _stuck(manifold, expected=ZERO) + _stamps("ws_manifold", 30, pairs),
            [
                _at("20m", f"{PREFIX}CheckStuck", []),
                _at("20m", f"{PREFIX}FreshnessTimestampStale", []),
                _at("20m", f"{PREFIX}CheckNotRunning", [expected_not_running(manifold.name)]),
            ],
        ),
        _test(
            "a stuck ticket check with stale timestamps: one FreshnessTimestampStale per source",
            _stuck(candles) + _stamps("candles", 120, pairs),
            [
                _at(
                    "20m",
                    f"{PREFIX}FreshnessTimestampStale",
                    [expected_freshness("candles", candles.name, len(pairs))],
                ),
                _at("20m", f"{PREFIX}CheckNotRunning", []),
                _at("20m", f"{PREFIX}CheckStuck", []),
            ],
        ),
        _test(
            "old timestamps while the check still runs: its own alert speaks, not the net",
            _running(candles) + _stamps("candles", 120, pairs) + check_state(candles),
            [_at("20m", f"{PREFIX}FreshnessTimestampStale", [])],
        ),
        _test(
            "a stuck check with no freshness source: CheckNotRunning after 5 m",
            _stuck(topk),
            [
                _at("6m", f"{PREFIX}CheckNotRunning", []),
                _at("15m", f"{PREFIX}CheckNotRunning", [expected_not_running(topk.name)]),
            ],
        ),
        _test(
            "a disabled check neither pages nor tickets, whatever its last verdict",
            _stuck(manifold, failing=FLAT, enabled=ZERO) + _stamps("ws_manifold", 30, pairs),
            [
                _at("20m", name, [])
                for name in (f"{PREFIX}CheckStuck", *silent, _alert(manifold.name))
            ],
        ),
        _test(
            "HA: one replica stuck, the other running: a ticket for that replica, no page",
            _stuck(manifold, instance=REPLICAS[0])
            + _running(manifold, REPLICAS[1])
            + check_state(manifold, ZERO, reason="none", instance=REPLICAS[1]),
            [
                _at("20m", f"{PREFIX}CheckStuck", []),
                _at(
                    "20m",
                    f"{PREFIX}CheckNotRunning",
                    [expected_not_running(manifold.name, REPLICAS[0])],
                ),
            ],
        ),
    ]


MISSED = "quantops_exporter_scheduler_missed_runs_total"
OVERLAPPING = "quantops_exporter_scheduler_overlapping_runs_total"


def expected_exporter_down(instance: str = INSTANCE) -> dict[str, Any]:
    """ExporterDown for `instance`."""
    return {
        "exp_labels": {"severity": "page", "check": "exporter", "instance": instance, **JOB},
        "exp_annotations": {
            "summary": f"quantops-exporter on {instance} is down",
            "description": "Prometheus cannot scrape the exporter: no runbook check is being "
            "watched.",
            "runbook_url": BY_MARKET,
        },
    }


def expected_absent() -> dict[str, Any]:
    """ExporterAbsent (one per Prometheus: it names no job)."""
    return {
        "exp_labels": {"severity": "page", "check": "exporter"},
        "exp_annotations": {
            "summary": "No quantops-exporter target is scraped",
            "description": "No target Prometheus scrapes has exported "
            "quantops_exporter_build_info (whatever its job): the scrape configuration lost the "
            "exporter, or no exporter ever answered. The runbook is not being watched.",
            "runbook_url": BY_MARKET,
        },
    }


def expected_missing_runs(check: str, instance: str = INSTANCE) -> dict[str, Any]:
    """SchedulerMissingRuns for `check` on `instance`."""
    return {
        "exp_labels": {"severity": "ticket", "check": check, "instance": instance, **JOB},
        "exp_annotations": {
            "summary": f"Check {check} misses scheduled runs on {instance}",
            "description": "Runs were dropped or overlapped: the check is slower than its "
            "interval or the event loop is blocked.",
            "runbook_url": BY_MARKET,
        },
    }


def exporter_cases() -> list[dict[str, Any]]:
    """The exporter's own alerts: down, absent, missed runs."""
    down, absent, missing = expected_exporter_down(), expected_absent(), expected_missing_runs
    missed, overlapping = MISSED, OVERLAPPING
    return [
        _test(
            "ExporterDown after 2 m without a scrape",
            exporter_target("1 0x10"),
            [
                _at("2m", f"{PREFIX}ExporterDown", []),
                _at("4m", f"{PREFIX}ExporterDown", [down]),
            ],
        ),
        _test(
            "ExporterAbsent when no exporter target (one that exported its build info) exists "
            "for 5 m",
            [{"series": 'up{job="other",instance="x:1"}', "values": "1x10"}],
            [
                _at("4m", f"{PREFIX}ExporterAbsent", []),
                _at("6m", f"{PREFIX}ExporterAbsent", [absent]),
            ],
        ),
        _test(
            "ExporterAbsent stays silent while the exporter is scraped",
            exporter_target("1x10"),
            [_at("9m", f"{PREFIX}ExporterAbsent", [])],
        ),
        _test(
            "SchedulerMissingRuns on one missed run, or more than 3 overlapping in 15 m",
            [
                _series(missed, "0 0 1x10", check="candles"),
                _series(missed, "0x12", check="kill_switch"),
                _series(overlapping, "0 0 5x10", check="kill_switch"),
                _series(overlapping, "0 0 2x10", check="candles"),
            ],
            [
                _at("1m", f"{PREFIX}SchedulerMissingRuns", []),
                _at(
                    "3m",
                    f"{PREFIX}SchedulerMissingRuns",
                    [missing("candles"), missing("kill_switch")],
                ),
            ],
        ),
        _test(
            "SchedulerMissingRuns stays silent while the counters stand still",
            [
                _series(missed, "3x20", check="candles"),
                _series(overlapping, "9x20", check="candles"),
            ],
            [_at("18m", f"{PREFIX}SchedulerMissingRuns", [])],
        ),
    ]


PREOPEN = f"{PREFIX}PreOpenNotReady"
WEEK = f"x{SPAN + 10}"  # the market's timestamps hold still for 70 minutes


def market(*, open_: bool = True, opened_at: int = 0, instance: str = INSTANCE) -> list[Series]:
    """The market's timestamps: it last opened at `opened_at` (epoch seconds, as promtool's
    clock counts from 0) and is open (closes in a day) or closed again (reopens in an hour)."""
    closes, opens = (86_400, 172_800) if open_ else (90_000, 3_600)
    return [
        _series("runbook_market_last_open_timestamp_seconds", f"{opened_at}{WEEK}", instance),
        _series("runbook_market_next_close_timestamp_seconds", f"{closes}{WEEK}", instance),
        _series("runbook_market_next_open_timestamp_seconds", f"{opens}{WEEK}", instance),
    ]


def pre_open(values: str = f"0{WEEK}", instance: str = INSTANCE) -> list[Series]:
    """runbook_section_ok of the Pre-Open Spin-Up as `values` (0: not green)."""
    return [
        _series("runbook_section_ok", values, instance, section=Section.PRE_OPEN.slug),
    ]


def closed_skip(
    check: Check, instance: str = INSTANCE, reason: str = "market_closed"
) -> list[Series]:
    """A check whose last run was skipped because the market was closed (before the open), or
    for another `reason` (`session_closed`: no intended session open)."""
    name = check.name
    return [
        _series("runbook_check_status", FLAT, instance, check=name, status="skipped"),
        _series("runbook_check_status", ZERO, instance, check=name, status="fail"),
        _series("runbook_check_expected", ZERO, instance, check=name),
        _series("runbook_check_enabled", FLAT, instance, check=name),
        _series("runbook_check_failure_reason", FLAT, instance, check=name, reason=reason),
    ]


def expected_preopen(
    listed: Iterable[tuple[str, str]], ready_within: float = PREOPEN_READY_WITHIN_SECONDS
) -> dict[str, Any]:
    """PreOpenNotReady (for QUANTOPS_PREOPEN_READY_WITHIN_SECONDS `ready_within`), listing
    (check, reason) pairs."""
    after = duration(ready_within)
    shown = ", ".join(f"{check} ({reason})" for check, reason in sorted(listed))
    return {
        "exp_labels": {"severity": "page", "check": "section", "section": "pre-open", **JOB},
        "exp_annotations": {
            "summary": f"Pre-Open Spin-Up not green {after} after the open",
            "description": f"More than {after} after the FX market opened, the Pre-Open Spin-Up "
            "is still not green on every exporter of the stack (the runbook's step 6: if still "
            f"flat after 5 minutes): {shown}. No other page speaks for these: a ticket check "
            "failing, or a check that has not judged since the open (market_closed: its last run "
            "was before it). Run `quantops-exporter check --section pre-open` or see the status "
            "page. Only the first hour after an open is watched; then each check's own alert "
            "owns it.",
            "runbook_url": PRE_OPEN_URL,  # its step 6, whatever the market
        },
    }


def preopen_cases() -> list[dict[str, Any]]:
    """PreOpenNotReady: red more than the configured time after the open pages once, naming
    what is not green; silent before it, while closed, when green, after the first hour, for a
    red shorter than its minute, without an open (`always`), and while a page of its own speaks
    for the cause (a paging check failing, a check that cannot read)."""
    topk, manifold, kill_switch = (
        _check("allocator_topk"),
        _check("manifold_freshness"),
        _check("kill_switch"),
    )
    before = int(PREOPEN_READY_WITHIN_SECONDS) - 60  # 4 minutes after the open
    after = int(PREOPEN_READY_WITHIN_SECONDS) + 60  # 6 minutes after the open
    late = PREOPEN_WINDOW_SECONDS + 300
    # A ticket check fails and a freshness check has not run since the open: no page speaks.
    unspoken = check_state(topk, reason="mismatch") + closed_skip(manifold)
    listed = [("allocator_topk", "mismatch"), ("manifold_freshness", "market_closed")]
    a, b = REPLICAS
    return [
        _test(
            "PreOpenNotReady pages when the Pre-Open Spin-Up is still red after the open",
            market() + pre_open() + unspoken,
            [
                _at(before, PREOPEN, []),
                _at(after, PREOPEN, [expected_preopen(listed)]),
                _at(PREOPEN_WINDOW_SECONDS - 60, PREOPEN, [expected_preopen(listed)]),
            ],
        ),
        _test(
            "PreOpenNotReady stays silent while the market is closed",
            market(open_=False) + pre_open() + unspoken,
            [_at(after, PREOPEN, [])],
        ),
        _test(
            "PreOpenNotReady stays silent when the Pre-Open Spin-Up is green",
            market() + pre_open(f"1{WEEK}") + unspoken,
            [_at(after, PREOPEN, [])],
        ),
        _test(
            "PreOpenNotReady stays silent after the first hour: the checks' own alerts own it",
            market() + pre_open() + unspoken,
            [_at(late, PREOPEN, [])],
        ),
        _test(
            "PreOpenNotReady stays silent without an open (QUANTOPS_MARKET_HOURS=always)",
            pre_open() + unspoken,
            [_at(after, PREOPEN, [])],
        ),
        _test(
            "PreOpenNotReady needs a minute of red: one slow run is not a page",
            market() + pre_open(f"1x{after // 15} 0x100") + unspoken,
            [
                _at(after + 45, PREOPEN, []),
                _at(after + 75, PREOPEN, [expected_preopen(listed)]),
            ],
            interval="15s",
        ),
        _test(
            "PreOpenNotReady held while a paging check of the section fails: its page speaks",
            market()
            + pre_open()
            + unspoken
            + check_state(kill_switch, reason="mismatch")
            + dependencies_up(kill_switch.dependencies),
            [
                _at(after, PREOPEN, []),
                _at(
                    after, _alert(kill_switch.name), [expected_check_alert(kill_switch, "mismatch")]
                ),
            ],
        ),
        _test(
            "PreOpenNotReady held while a check of the section cannot read: CannotRead speaks",
            market()
            + pre_open()
            + check_state(
                manifold,
                status="error",
                reason="bad_payload",
                unreadable=[first_read(manifold)],
            )
            + dependencies_up(manifold.dependencies),
            [
                _at(after, PREOPEN, []),
                _cannot_read_one(
                    after, "valkey", manifold.name, "bad_payload", first_read(manifold)[1]
                ),
            ],
        ),
        _test(
            "HA: two replicas red after the open give one PreOpenNotReady",
            market(instance=a)
            + market(instance=b)
            + pre_open(instance=a)
            + pre_open(instance=b)
            + check_state(topk, reason="mismatch", instance=a)
            + check_state(topk, reason="mismatch", instance=b),
            [_at(after, PREOPEN, [expected_preopen([("allocator_topk", "mismatch")])])],
        ),
        _test(
            "HA: one replica green is enough to stay silent (the other may be cut off)",
            market(instance=a)
            + market(instance=b)
            + pre_open(instance=a)
            + pre_open(f"1{WEEK}", instance=b)
            + check_state(topk, reason="mismatch", instance=a),
            [_at(after, PREOPEN, [])],
        ),
    ]


PAIRS = ("EUR_USD", "GBP_USD")  # the instruments the cases name


def alert_names() -> list[str]:
    """Every alert of the shipped rule file, in its order."""
    return [r["alert"] for g in build_rules()["groups"] for r in g["rules"] if "alert" in r]


def _quiet(times: Iterable[int]) -> list[dict[str, Any]]:
    """No alert of the rule file at any of `times`."""
    names = alert_names()
    return [_at(t, name, []) for t in times for name in names]


def ha_stack_cases() -> list[dict[str, Any]]:
    """Two replicas, one stack: the dependency, read and stuck alerts aggregate by job and
    stack and need every replica, so a fault both see is one alert, and one replica alone is
    none."""
    a, b = REPLICAS
    manifold = _check("manifold_freshness")
    flap = " ".join(["1", "0"] * 60)
    stuck_at = _stuck_pages_at(manifold)
    blind_at = 60 + seconds_of(cannot_read_for(CHECKS)) + 60
    return [
        _test(
            "HA: two replicas finding Valkey down give one DependencyDown",
            dependencies_up([Dependency.VALKEY], f"1 0x{SPAN}", instance=a)
            + dependencies_up([Dependency.VALKEY], f"1 0x{SPAN}", instance=b),
            [_at("5m", f"{PREFIX}DependencyDown", [expected_down("valkey")])],
        ),
        _test(
            "HA: two replicas seeing the API flap give one DependencyFlapping",
            [
                s
                for r in REPLICAS
                for s in dependencies_up([Dependency.API], flap, instance=r)
                + dependencies_up([Dependency.STACK_METRICS], "1x120", instance=r)
            ],
            [_at("5m", f"{PREFIX}DependencyFlapping", [expected_flapping("api")])],
            interval="15s",
        ),
        _test(
            "HA: one replica seeing the API flap, the other reading it steadily: no "
            "DependencyFlapping",
            dependencies_up([Dependency.API], flap, instance=a)
            + dependencies_up([Dependency.API], "1x120", instance=b),
            [_at("5m", f"{PREFIX}DependencyFlapping", [])],
            interval="15s",
        ),
        _test(
            "HA: two replicas that cannot read manifolds give one CannotRead",
            [
                s
                for r in REPLICAS
                for s in check_state(
                    manifold,
                    status="error",
                    reason="bad_payload",
                    instance=r,
                    unreadable=[first_read(manifold)],
                )
                + dependencies_up(manifold.dependencies, instance=r)
            ],
            [
                _cannot_read_one(
                    blind_at, "valkey", manifold.name, "bad_payload", first_read(manifold)[1]
                )
            ],
        ),
        _test(
            "HA: manifold_freshness stuck on both replicas gives one CheckStuck",
            _stuck(manifold, instance=a) + _stuck(manifold, instance=b),
            [
                _at(stuck_at, f"{PREFIX}CheckStuck", [expected_stuck(manifold.name)]),
                _at("20m", f"{PREFIX}CheckNotRunning", []),
            ],
        ),
    ]


def ha_exporter_cases() -> list[dict[str, Any]]:
    """Two replicas, one stack: the alerts about one exporter (CheckNotRunning,
    FreshnessTimestampStale, SchedulerMissingRuns, ExporterDown) keep its `instance` by design,
    so the same fault on both is two alerts, which Alertmanager sends as one notification (it
    groups without `instance`); ExporterAbsent is one per job."""
    a, b = REPLICAS
    topk, candles = _check("allocator_topk"), _check("candles")
    return [
        _test(
            "HA: a check stopped on both replicas is one CheckNotRunning per replica (per "
            "exporter)",
            _stuck(topk, instance=a) + _stuck(topk, instance=b),
            [
                _at(
                    "15m",
                    f"{PREFIX}CheckNotRunning",
                    [expected_not_running(topk.name, a), expected_not_running(topk.name, b)],
                )
            ],
        ),
        _test(
            "HA: candles stopped on both replicas with stale timestamps is one "
            "FreshnessTimestampStale per replica (per exporter)",
            [
                s
                for r in REPLICAS
                for s in _stuck(candles, instance=r) + _stamps("candles", 120, PAIRS, instance=r)
            ],
            [
                _at(
                    "20m",
                    f"{PREFIX}FreshnessTimestampStale",
                    [
                        expected_freshness("candles", candles.name, len(PAIRS), a),
                        expected_freshness("candles", candles.name, len(PAIRS), b),
                    ],
                )
            ],
        ),
        _test(
            "HA: a run missed on both replicas is one SchedulerMissingRuns per replica (per "
            "exporter)",
            [_series(MISSED, "0 0 1x10", r, check=candles.name) for r in REPLICAS],
            [
                _at(
                    "3m",
                    f"{PREFIX}SchedulerMissingRuns",
                    [
                        expected_missing_runs(candles.name, a),
                        expected_missing_runs(candles.name, b),
                    ],
                )
            ],
        ),
        _test(
            "HA: one replica down is one ExporterDown for it; the other still watches the stack",
            exporter_target("1 0x10", a) + exporter_target("1x11", b),
            [
                _at("4m", f"{PREFIX}ExporterDown", [expected_exporter_down(a)]),
                _at("9m", f"{PREFIX}ExporterAbsent", []),
            ],
        ),
        _test(
            "HA: both replicas down are two ExporterDown and no ExporterAbsent (the targets exist)",
            [s for r in REPLICAS for s in exporter_target("1 0x10", r)],
            [
                _at(
                    "4m",
                    f"{PREFIX}ExporterDown",
                    [expected_exporter_down(a), expected_exporter_down(b)],
                ),
                _at("9m", f"{PREFIX}ExporterAbsent", []),
            ],
        ),
    ]


def build_tests() -> dict[str, Any]:
    """The promtool test file."""
    return {
        "rule_files": ["../rules/quantops-runbook.rules.yml"],
        "evaluation_interval": "15s",
        # The rule file's order, records first: without it promtool evaluates the groups in a
        # random order, and an alert reads the records of this evaluation or of the last one.
        "group_eval_order": [g["name"] for g in build_rules()["groups"]],
        "tests": [case for c in CHECKS if c.name in ALERTS for case in check_cases(c)]
        + [value_case(), flapping_check_case()]
        + ha_cases()
        + dependency_cases()
        + cannot_read_cases()
        + hold_cases()
        + preopen_cases()
        + stuck_cases()
        + exporter_cases()
        + ha_stack_cases()
        + ha_exporter_cases(),
    }
