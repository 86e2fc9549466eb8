"""`quantops-exporter demo` as a newcomer runs it: all ok, break a key as printed, watch it flip."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.checks.catalog import CHECK_NAMES
from quantops_exporter.simulator.valkey_server import free_port

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
