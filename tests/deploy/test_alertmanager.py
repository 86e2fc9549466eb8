"""The shipped Alertmanager configuration, run for real: alerts shaped as the rules shape them
are posted, and what Alertmanager inhibits and groups is read back.

Each scenario uses its own `stack` label, so scenarios cannot inhibit one another (every
inhibition is `equal` on the stack).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import patience
from tests.deploy.test_artifacts import ALERTMANAGER, binary

JOB = "quantops-exporter"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager with the shipped configuration."""
    tmp = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp / "log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={ALERTMANAGER}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: _get(f"{url}/-/ready") is not None, "Alertmanager ready", tmp / "log")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = response.read()
    except OSError:
        return None
    return json.loads(body) if body.strip().startswith((b"[", b"{")) else body


def _wait(probe: Any, what: str, log: Path | None = None, limit: float = 20) -> Any:
    deadline = time.monotonic() + patience(limit)
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    tail = log.read_text()[-2000:] if log is not None else ""
    pytest.fail(f"not within {patience(limit)}s: {what} {tail}")


def post(alertmanager: str, *alerts: dict[str, str]) -> None:
    """Fire `alerts` (label sets) for the next hour."""
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": labels["alertname"]},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
        }
        for labels in alerts
    ]
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def notified(alertmanager: str, stack: str) -> set[str]:
    """The alerts of `stack` Alertmanager would notify (active, not inhibited), as
    `alertname/check-or-dependency`."""
    alerts = _get(f"{alertmanager}/api/v2/alerts?active=true&inhibited=false&silenced=false")
    return {
        f"{a['labels']['alertname']}/{a['labels'].get('check') or a['labels'].get('dependency')}"
        for a in alerts or []
        if a["labels"].get("stack") == stack
    }


def settles_to(alertmanager: str, stack: str, expected: set[str]) -> None:
    """Inhibition is computed from alerts Alertmanager has taken in: wait for it to settle."""
    seen: set[str] = set()

    def probe() -> bool:
        nonlocal seen
        seen = notified(alertmanager, stack)
        return seen == expected

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not probe():
        time.sleep(0.3)
    assert seen == expected


def check_alert(
    stack: str, alertname: str, check: str, depends_on: str, severity: str = "page"
) -> dict[str, str]:
    """A check alert's labels, as the rules give them (no instance: aggregated)."""
    return {
        "alertname": alertname,
        "check": check,
        "depends_on": depends_on,
        "severity": severity,
        "job": JOB,
        "stack": stack,
    }


def test_a_server_outage_inhibits_every_check_reading_it(alertmanager: str) -> None:
    """DependencyDown for one server's comma list inhibits the checks whose depends_on lists
    any of its dependencies, and no other check."""
    stack = "outage"
    post(
        alertmanager,
        {
            "alertname": "SepRunbookDependencyDown",
            "check": "dependency",
            "dependency": "api,stack_metrics",
            "severity": "page",
            "job": JOB,
            "stack": stack,
        },
        check_alert(stack, "SepRunbookKillSwitch", "kill_switch", "valkey,api"),
        check_alert(stack, "SepRunbookTradingNotLive", "trading_mode", "api"),
        check_alert(stack, "SepRunbookTooFewEligible", "gates_eligible", "stack_metrics"),
        check_alert(stack, "SepRunbookManifoldStale", "manifold_freshness", "valkey"),
        check_alert(
            stack, "SepRunbookAllocatorCadence", "allocator_cadence", "allocator", "ticket"
        ),
    )
    settles_to(
        alertmanager,
        stack,
        {
            "SepRunbookDependencyDown/dependency",
            "SepRunbookManifoldStale/manifold_freshness",
            "SepRunbookAllocatorCadence/allocator_cadence",
        },
    )


def test_a_single_dependency_outage_matches_inside_a_list(alertmanager: str) -> None:
    """DependencyDown valkey inhibits a check reading "valkey,api,stack_metrics"."""
    stack = "valkey"
    post(
        alertmanager,
        {
            "alertname": "SepRunbookDependencyDown",
            "check": "dependency",
            "dependency": "valkey",
            "severity": "page",
            "job": JOB,
            "stack": stack,
        },
        check_alert(
            stack,
            "SepRunbookFlatWhileGatesGreen",
            "no_positions_diagnosis",
            "valkey,api,stack_metrics",
        ),
        check_alert(stack, "SepRunbookTradingNotLive", "trading_mode", "api"),
    )
    settles_to(
        alertmanager,
        stack,
        {"SepRunbookDependencyDown/dependency", "SepRunbookTradingNotLive/trading_mode"},
    )


def test_an_outage_of_one_stack_does_not_silence_another(alertmanager: str) -> None:
    """Inhibitions are equal on job and stack."""
    post(
        alertmanager,
        {
            "alertname": "SepRunbookDependencyDown",
            "check": "dependency",
            "dependency": "api,stack_metrics",
            "severity": "page",
            "job": JOB,
            "stack": "left",
        },
        check_alert("right", "SepRunbookTradingNotLive", "trading_mode", "api"),
    )
    settles_to(alertmanager, "right", {"SepRunbookTradingNotLive/trading_mode"})


def test_a_page_inhibits_the_tickets_of_its_check_on_every_replica(alertmanager: str) -> None:
    """CheckStuck (page) inhibits CheckNotRunning and FreshnessTimestampStale (tickets, one per
    replica) of the same check, not another check's ticket."""
    stack = "stuck"
    ticket = {"severity": "ticket", "job": JOB, "stack": stack}
    post(
        alertmanager,
        {
            "alertname": "SepRunbookCheckStuck",
            "check": "manifold_freshness",
            "severity": "page",
            "job": JOB,
            "stack": stack,
        },
        {
            "alertname": "SepRunbookCheckNotRunning",
            "check": "manifold_freshness",
            "instance": "a:9110",
            **ticket,
        },
        {
            "alertname": "SepRunbookCheckNotRunning",
            "check": "manifold_freshness",
            "instance": "b:9110",
            **ticket,
        },
        {
            "alertname": "SepRunbookFreshnessTimestampStale",
            "check": "manifold_freshness",
            "source": "ws_manifold",
            "instance": "a:9110",
            **ticket,
        },
        {
            "alertname": "SepRunbookCheckNotRunning",
            "check": "candles",
            "instance": "a:9110",
            **ticket,
        },
    )
    settles_to(
        alertmanager,
        stack,
        {"SepRunbookCheckStuck/manifold_freshness", "SepRunbookCheckNotRunning/candles"},
    )


def test_two_replicas_alerts_are_one_notification(alertmanager: str) -> None:
    """Per-exporter alerts of two replicas of one stack fall into one group (no instance in
    group_by); another stack is another group."""
    for stack in ("ha", "ha-other"):
        post(
            alertmanager,
            *[
                {
                    "alertname": "SepRunbookExporterDown",
                    "check": "exporter",
                    "severity": "page",
                    "job": JOB,
                    "stack": stack,
                    "instance": instance,
                }
                for instance in ("a:9110", "b:9110")
            ],
        )

    def groups() -> list[list[str]]:
        found = _get(f"{alertmanager}/api/v2/alerts/groups") or []
        return sorted(
            sorted(a["labels"]["instance"] for a in g["alerts"])
            for g in found
            if g["labels"].get("alertname") == "SepRunbookExporterDown"
        )

    _wait(lambda: groups() == [["a:9110", "b:9110"], ["a:9110", "b:9110"]], "two groups of two")
