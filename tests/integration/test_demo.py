"""`quantops-exporter demo` as a newcomer runs it: all ok, break a key as printed, watch it flip."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.checks.catalog import CHECK_NAMES
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import require_libfaketime

pytestmark = pytest.mark.integration


def ok_values(port: int) -> dict[str, float]:
    """runbook_check_ok per check from the demo's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return {
        s.labels["check"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "runbook_check_ok"
    }


def wait_until(predicate, limit: float) -> float:  # type: ignore[no-untyped-def]
    """Poll `predicate` until true; return the seconds it took, fail after `limit`."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            if predicate():
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not true within {limit}s")


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    """The demo process on a free port, its banner lines read."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")}
    env |= {
        "QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "QUANTOPS_CHECKS__manifold_freshness__INTERVAL_SECONDS": "2",
        "QUANTOPS_CHECKS__manifold_freshness__TIMEOUT_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    with subprocess.Popen(
        [sys.executable, "-m", "quantops_exporter", "demo"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        banner: list[str] = []
        for line in process.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        try:
            yield process, port, banner
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=15)


def test_demo_all_ok_then_the_printed_command_flips_manifold(demo) -> None:  # type: ignore[no-untyped-def]
    """Every check ok within 10 s; the banner's SET flips manifold_freshness; DEL restores."""
    process, port, banner = demo
    took = wait_until(lambda: ok_values(port) == dict.fromkeys(CHECK_NAMES, 1.0), limit=10)
    assert took < 10
    set_cmd = next(line for line in banner if "SET ws:last:manifold:EUR_USD" in line)
    del_cmd = next(line for line in banner if "DEL ws:last:manifold:EUR_USD" in line)
    subprocess.run(shlex.split(set_cmd), check=True, capture_output=True)
    wait_until(lambda: ok_values(port)["manifold_freshness"] == 0.0, limit=6)
    assert ok_values(port)["valkey_ping"] == 1.0  # the others are unaffected
    subprocess.run(shlex.split(del_cmd), check=True, capture_output=True)
    wait_until(lambda: ok_values(port)["manifold_freshness"] == 1.0, limit=6)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_demo_at_christmas_runs_the_stack_and_the_daemon_on_one_fake_clock() -> None:
    """Process, real libfaketime: `demo --at "2026-12-25 12:00"` re-runs itself with the
    preload. The daemon's runs are stamped Christmas Day (New York noon), the calendar says
    closed until the Sunday open, the market-hours checks skip themselves, and the simulated
    stack, on the same clock, is in its closed phase with the kill switch ON."""
    from quantops_exporter.simulator.fakeclock import LIBRARIES, NEW_YORK, find_library

    try:
        find_library()
    except ValueError:
        require_libfaketime(LIBRARIES[0])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")}
    env |= {"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}", "PYTHONUNBUFFERED": "1"}
    noon = datetime(2026, 12, 25, 12, 0, tzinfo=NEW_YORK).timestamp()
    sunday_open = datetime(2026, 12, 27, 17, 0, tzinfo=NEW_YORK).timestamp()
    argv = [sys.executable, "-m", "quantops_exporter", "demo", "--at", "2026-12-25 12:00"]
    with subprocess.Popen(
        argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        try:
            text = "\n".join(banner)
            assert "QUANTOPS_MARKET_HOURS=fx" in text
            assert "clock      2026-12-25 12:00 EST New York" in text, text
            simulator = re.search(r"simulator  (http://\S+)", text)
            assert simulator is not None, text

            def metrics() -> dict[tuple[str, str], float]:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    families = text_string_to_metric_families(response.read().decode())
                return {
                    (s.name, s.labels.get("check", s.labels.get("reason", ""))): s.value
                    for f in families
                    for s in f.samples
                    if "reason" not in s.labels or s.labels["reason"] == "market_closed"
                }

            wait_until(
                lambda: (
                    ("runbook_check_last_run_timestamp_seconds", "manifold_freshness") in metrics()
                ),
                limit=20,
            )
            seen = metrics()
            ran = seen[("runbook_check_last_run_timestamp_seconds", "manifold_freshness")]
            assert noon <= ran < noon + 120
            assert seen[("runbook_market_next_open_timestamp_seconds", "")] == sunday_open
            assert seen[("runbook_check_failure_reason", "manifold_freshness")] == 1.0
            url = f"{simulator.group(1)}/_sim/week"
            with urllib.request.urlopen(url, timeout=2) as response:
                week = json.loads(response.read())
            assert week["phase"] == "closed" and week["kill_switch"] is True, week
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
    assert process.returncode == 0
