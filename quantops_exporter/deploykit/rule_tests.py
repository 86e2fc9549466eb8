"""promtool unit tests for the generated rules, written to deploy/prometheus/tests/ by
`python -m quantops_exporter.deploykit`, run with

    promtool test rules deploy/prometheus/tests/quantops-runbook.test.yml

Expected annotations are rendered here by plain string substitution, independently of
Prometheus's templating, so a template that renders wrongly fails the test.

Every alert has cases: it fires (labels and annotations), it stays silent while not expected
(closed market), while disabled and while a dependency it reads is down for a sustained window;
a fault gives exactly one alert (an `error` is CannotRead, not the check's page; a cause holds
its consequences; a server is one DependencyDown); two replicas give one alert. PreOpenNotReady
fires only within its window after an open, and never beside a page that speaks for its cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECKS, DEFAULT_RUNBOOK_URL, Anchor, Section
from quantops_exporter.checks.diagnosis import PROCEDURE, Step
from quantops_exporter.checks.thresholds import PREOPEN_READY_WITHIN_SECONDS
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
EXPORTER_URL = f"{DEFAULT_RUNBOOK_URL}#{Anchor.PRE_OPEN.value}"
SPAN = 60  # samples per series (at 1 m: an hour)
FLAT = f"1x{SPAN}"
ZERO = f"0x{SPAN}"
FROM_1M = f"0 1x{SPAN}"  # 0 at t=0, 1 from t=1m
Series = dict[str, str]


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
) -> list[Series]:
    """One check's exported state: `status` (fail or error) as `values`, with `reason`."""
    other = "error" if status == "fail" else "fail"
    name = check.name
    return [
        _series("runbook_check_status", values, instance, check=name, status=status),
        _series("runbook_check_status", ZERO, instance, check=name, status=other),
        _series("runbook_check_expected", expected, instance, check=name),
        _series("runbook_check_enabled", enabled, instance, check=name),
        _series("runbook_check_failure_reason", values, instance, check=name, reason=reason),
    ]


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
            "runbook_url": f"{DEFAULT_RUNBOOK_URL}#{check.anchor}",
            "severity_reason": spec.why,
        },
    }


def expected_cannot_read(dependency: str, blind: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """CannotRead for `dependency` (a depends_on value), listing (check, reason) pairs."""
    listed = ", ".join(f"{check} ({reason})" for check, reason in sorted(blind))
    return {
        "exp_labels": {"severity": "page", "check": "dependency", "dependency": dependency, **JOB},
        "exp_annotations": {
            "summary": f"Cannot read {dependency}",
            "description": f"The checks reading {dependency} could not judge (status error) on "
            f"every exporter of the stack: {listed}. Nothing is known about what they watch, so "
            "their own alerts cannot fire: a blind spot over paging checks. The dependency "
            "answers (it is not down) but not in a form the checks can read: fix the answer, or "
            "the exporter's access to it.",
            "runbook_url": EXPORTER_URL,
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
            "runbook_url": EXPORTER_URL,
        },
    }


def expected_flapping(dependency: str) -> dict[str, Any]:
    """DependencyFlapping for `dependency`."""
    return {
        "exp_labels": {"severity": "page", "check": "dependency", "dependency": dependency, **JOB},
        "exp_annotations": {
            "summary": f"{dependency} answers intermittently",
            "description": f"Requests to {dependency} keep alternating between answered and "
            "failed (refused, hung or 5xx): some endpoint fails while others answer. Checks "
            "reading it judge and error by turns, so their own alerts cannot hold; find the "
            "failing endpoint in the exporter's log or /api/v1/checks.",
            "runbook_url": EXPORTER_URL,
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
    """A promtool test group; `name` says what it proves (promtool prints it on failure)."""
    return {"name": name, "interval": interval, "input_series": series, "alert_rule_test": checks}


def _at(eval_time: str | int, alertname: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    when = f"{eval_time}s" if isinstance(eval_time, int) else eval_time
    return {"eval_time": when, "alertname": alertname, "exp_alerts": alerts}


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
    cannot_read = (
        [expected_cannot_read(depends_on(deps), [(check.name, "bad_payload")])] if deps else []
    )
    error = _test(
        f"{check.name} in error: no {alert}, one CannotRead for what it reads",
        check_state(check, status="error", reason="bad_payload") + up,
        [
            _at(settled, alert, []),
            _at(settled, f"{PREFIX}CannotRead", cannot_read),
            _at(settled, f"{PREFIX}DependencyDown", []),
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
    cases = [fires, error, closed, closed_error, disabled]
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
    """Two replicas of the exporter against one stack: one alert per fault."""
    trading = _check("trading_mode")
    alert = _alert(trading.name)
    a, b = REPLICAS
    both = [
        *check_state(trading, instance=a, reason="unexpected_value"),
        *check_state(trading, instance=b, reason="unexpected_value"),
        *dependencies_up(trading.dependencies, instance=a),
        *dependencies_up(trading.dependencies, instance=b),
    ]
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
        _test(
            "HA: two replicas seeing one fault give one alert naming both",
            both,
            [_at(at, alert, [expected_check_alert(trading, "unexpected_value", seen=REPLICAS)])],
        ),
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


def cannot_read_cases() -> list[dict[str, Any]]:
    """Garbage from the API is one CannotRead, not a page per check; a check reading two
    dependencies is named by both; closed markets and outages keep it silent."""
    api_readers = [c for c in CHECKS if Dependency.API in c.dependencies]
    kill_switch = _check("kill_switch")
    manifold = _check("manifold_freshness")
    garbage = [s for c in api_readers for s in check_state(c, status="error", reason="bad_payload")]
    garbage += dependencies_up(
        [Dependency.API, Dependency.VALKEY, Dependency.STACK_METRICS, Dependency.ALLOCATOR]
    )
    single = [c.name for c in api_readers if c.dependencies == (Dependency.API,)]
    settled = 60 + seconds_of(cannot_read_for(CHECKS)) + 60
    backend = {Dependency.API, Dependency.STACK_METRICS}
    backend_readers = [c for c in CHECKS if set(c.dependencies) & backend]
    whole_server = [
        s for c in backend_readers for s in check_state(c, status="error", reason="bad_payload")
    ]
    whole_server += dependencies_up(Dependency)
    listed = [  # the checks reading only what the backend serves
        (c.name, "bad_payload") for c in backend_readers if set(c.dependencies) <= backend
    ]
    return [
        _test(
            "the backend answers HTML on the API and /metrics: one CannotRead for the server",
            whole_server,
            [
                _at(
                    settled,
                    f"{PREFIX}CannotRead",
                    [expected_cannot_read("api,stack_metrics", listed)],
                ),
                _at(settled, f"{PREFIX}DependencyDown", []),
            ],
        ),
        _test(
            "the API answers HTML: one CannotRead api, no check page, no other CannotRead",
            garbage,
            [
                _at(
                    settled,
                    f"{PREFIX}CannotRead",
                    [expected_cannot_read("api", [(name, "bad_payload") for name in single])],
                ),
                *[_at(settled, _alert(c.name), []) for c in api_readers if c.name in ALERTS],
                _at(settled, f"{PREFIX}DependencyDown", []),
            ],
        ),
        _test(
            "only the kill switch cannot read: CannotRead names both things it reads",
            check_state(kill_switch, status="error", reason="http_error")
            + dependencies_up(kill_switch.dependencies),
            [
                _at("2m", f"{PREFIX}CannotRead", []),
                _at(
                    settled,
                    f"{PREFIX}CannotRead",
                    [expected_cannot_read("valkey,api", [("kill_switch", "http_error")])],
                ),
            ],
        ),
        _test(
            "a check that cannot read while Valkey is down: DependencyDown only",
            check_state(manifold, status="error", reason="unreachable")
            + dependencies_up(manifold.dependencies, f"1 0x{SPAN}"),
            [
                _at(settled, f"{PREFIX}CannotRead", []),
                _at(settled, f"{PREFIX}DependencyDown", [expected_down("valkey")]),
            ],
        ),
        _test(
            "HA: CannotRead needs every replica blind",
            check_state(manifold, status="error", reason="bad_payload", instance=REPLICAS[0])
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
) -> list[Series]:
    """A check whose last run stopped at t=0 (its last verdict ok, or failing as given)."""
    return [
        _series("runbook_check_last_run_timestamp_seconds", ZERO, instance, check=check.name),
        _series(
            "runbook_check_interval_seconds",
            f"{check.interval:g}x{SPAN}",
            instance,
            check=check.name,
        ),
        *check_state(
            check, failing, reason="none", expected=expected, enabled=enabled, instance=instance
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


def _stamps(source: str, limit: float, instruments: Sequence[str]) -> list[Series]:
    """Freshness timestamps stuck at 0 for `instruments`, and the source's limit."""
    return [
        _series(
            "runbook_freshness_last_update_timestamp_seconds",
            ZERO,
            source=source,
            instrument=instrument,
        )
        for instrument in instruments
    ] + [_series("runbook_freshness_max_age_seconds", f"{limit:g}x{SPAN}", source=source)]


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
            "runbook_url": EXPORTER_URL,
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
            "runbook_url": EXPORTER_URL,
        },
    }


def expected_freshness(source: str, check: str, count: int) -> dict[str, Any]:
    """FreshnessTimestampStale for `source` (judged by `check`) with `count` instruments."""
    return {
        "exp_labels": {
            "severity": "ticket",
            "check": check,
            "source": source,
            "instance": INSTANCE,
            **JOB,
        },
        "exp_annotations": {
            "summary": f"{check} stopped running on {INSTANCE}: its {source} timestamps are "
            "over twice their limit old",
            "description": f"{count} {source} instrument(s) were last read with a timestamp "
            f"more than twice the configured limit old, and {check} has not run since: this "
            "exporter is stuck, so whether the data is fresh now is not known. Computed from "
            "exported timestamps, so it fires even if the exporter's checks stopped updating.",
            "runbook_url": EXPORTER_URL,
        },
    }


def stuck_cases() -> list[dict[str, Any]]:
    """A stuck check pages once (paging checks) or tickets once; disabled, it says nothing."""
    manifold, candles, topk = (
        _check("manifold_freshness"),
        _check("candles"),
        _check("allocator_topk"),
    )
    pairs = ("EUR_USD", "GBP_USD")
    stuck_at = int(STUCK_INTERVALS * manifold.interval + STUCK_SLACK_SECONDS)
    silent = [f"{PREFIX}CheckNotRunning", f"{PREFIX}FreshnessTimestampStale"]
    return [
        _test(
            "a stuck paging check pages promptly as CheckStuck, and only that",
            _stuck(manifold) + _stamps("ws_manifold", 30, pairs),
            [
                _at(stuck_at - 15, f"{PREFIX}CheckStuck", []),
                _at(stuck_at + 60, f"{PREFIX}CheckStuck", [expected_stuck(manifold.name)]),
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


def exporter_cases() -> list[dict[str, Any]]:
    """The exporter's own alerts: down, absent, missed runs."""
    down = {
        "exp_labels": {"severity": "page", "check": "exporter", "instance": INSTANCE, **JOB},
        "exp_annotations": {
            "summary": f"quantops-exporter on {INSTANCE} is down",
            "description": "Prometheus cannot scrape the exporter: no runbook check is being "
            "watched.",
            "runbook_url": EXPORTER_URL,
        },
    }
    absent = {
        "exp_labels": {"severity": "page", "check": "exporter", **JOB},
        "exp_annotations": {
            "summary": "No quantops-exporter target is scraped",
            "description": f"No target of job {DEFAULT_JOB} exists: the runbook is not being "
            "watched.",
            "runbook_url": EXPORTER_URL,
        },
    }

    def missing(check: str) -> dict[str, Any]:
        return {
            "exp_labels": {"severity": "ticket", "check": check, "instance": INSTANCE, **JOB},
            "exp_annotations": {
                "summary": f"Check {check} misses scheduled runs on {INSTANCE}",
                "description": "Runs were dropped or overlapped: the check is slower than its "
                "interval or the event loop is blocked.",
                "runbook_url": EXPORTER_URL,
            },
        }

    missed = "quantops_exporter_scheduler_missed_runs_total"
    overlapping = "quantops_exporter_scheduler_overlapping_runs_total"
    return [
        _test(
            "ExporterDown after 2 m without a scrape",
            [_series("up", "1 0x10")],
            [
                _at("2m", f"{PREFIX}ExporterDown", []),
                _at("4m", f"{PREFIX}ExporterDown", [down]),
            ],
        ),
        _test(
            "ExporterAbsent when no target of the job exists for 5 m",
            [{"series": 'up{job="other",instance="x:1"}', "values": "1x10"}],
            [
                _at("4m", f"{PREFIX}ExporterAbsent", []),
                _at("6m", f"{PREFIX}ExporterAbsent", [absent]),
            ],
        ),
        _test(
            "ExporterAbsent stays silent while the exporter is scraped",
            [_series("up", "1x10")],
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


def closed_skip(check: Check, instance: str = INSTANCE) -> list[Series]:
    """A check whose last run was skipped because the market was closed (before the open)."""
    name = check.name
    return [
        _series("runbook_check_status", FLAT, instance, check=name, status="skipped"),
        _series("runbook_check_status", ZERO, instance, check=name, status="fail"),
        _series("runbook_check_expected", ZERO, instance, check=name),
        _series("runbook_check_enabled", FLAT, instance, check=name),
        _series("runbook_check_failure_reason", FLAT, instance, check=name, reason="market_closed"),
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
            "runbook_url": EXPORTER_URL,
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
            + check_state(manifold, status="error", reason="bad_payload")
            + dependencies_up(manifold.dependencies),
            [
                _at(after, PREOPEN, []),
                _at(
                    after,
                    f"{PREFIX}CannotRead",
                    [expected_cannot_read("valkey", [(manifold.name, "bad_payload")])],
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


def build_tests() -> dict[str, Any]:
    """The promtool test file."""
    return {
        "rule_files": ["../rules/quantops-runbook.rules.yml"],
        "evaluation_interval": "15s",
        "tests": [case for c in CHECKS if c.name in ALERTS for case in check_cases(c)]
        + [value_case(), flapping_check_case()]
        + ha_cases()
        + dependency_cases()
        + cannot_read_cases()
        + hold_cases()
        + preopen_cases()
        + stuck_cases()
        + exporter_cases(),
    }
