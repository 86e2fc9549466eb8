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
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.checks.catalog import CHECK_NAMES
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import patience, require_libfaketime, unfaked
from tests.moments import next_dec_25_noon

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
    while time.monotonic() - started < patience(limit):
        try:
            if predicate():
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not true within {patience(limit)}s")


# The printed redis-cli commands run as from the shell that started the demo: without the
# suite's own libfaketime preload (Debian's redis-cli hangs under it).
SHELL = unfaked(dict(os.environ))


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    """The demo process on a free port, its banner lines read."""
    port = free_port()
    env = unfaked({k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")})
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
    """Every check ok (within 10 s on a quiet machine: benchmarks/ measures how soon); the
    banner's SET flips manifold_freshness; DEL restores."""
    process, port, banner = demo
    wait_until(lambda: ok_values(port) == dict.fromkeys(CHECK_NAMES, 1.0), limit=10)
    set_cmd = next(line for line in banner if "SET ws:last:manifold:EUR_USD" in line)
    del_cmd = next(line for line in banner if "DEL ws:last:manifold:EUR_USD" in line)
    subprocess.run(shlex.split(set_cmd), check=True, capture_output=True, env=SHELL)
    wait_until(lambda: ok_values(port)["manifold_freshness"] == 0.0, limit=6)
    assert ok_values(port)["valkey_ping"] == 1.0  # the others are unaffected
    subprocess.run(shlex.split(del_cmd), check=True, capture_output=True, env=SHELL)
    wait_until(lambda: ok_values(port)["manifold_freshness"] == 1.0, limit=6)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_the_banner_is_the_last_thing_on_screen_and_names_the_allocator(demo) -> None:  # type: ignore[no-untyped-def]
    """The daemon logs to the file the banner names, so nothing follows the banner on the
    terminal while the checks run; the banner gives the allocator's URL and a `check` line
    that works against the demo."""
    process, port, banner = demo
    text = "\n".join(banner)
    allocator = re.search(r"^  allocator  (http://127\.0\.0\.1:\d+)/status$", text, re.M)
    assert allocator is not None, text
    log_path = re.search(r"^  logs       (\S+)  \(tail -f it\)", text, re.M)
    assert log_path is not None, text
    wait_until(lambda: ok_values(port) == dict.fromkeys(CHECK_NAMES, 1.0), limit=10)
    command = re.search(
        r"^  (VALKEY_URL=.*) \\\n    (QUANTOPS_MARKET_HOURS=\S+) quantops-exporter check$",
        text,
        re.M,
    )
    assert command is not None, text
    env = dict(item.split("=", 1) for item in [*command[1].split(), command[2]])
    checked = subprocess.run(
        [sys.executable, "-m", "quantops_exporter", "check"],
        env=unfaked({k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")}) | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert env["ALLOCATOR_URL"] == allocator[1]
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert err == "", err  # nothing reached the terminal but the banner and the goodbye
    assert out.strip() == f"quantops-exporter demo: stopped; the log is kept in {log_path[1]}"
    with open(log_path[1]) as log:
        assert "listening" in log.read()


def test_sighup_reloads_the_demo_like_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 21: the demo's SIGHUP re-reads the configuration (here a changed --env-file) and
    keeps reading the simulated stack: the interval changes, every check stays ok."""
    env_file = tmp_path / "demo.env"
    env_file.write_text("QUANTOPS_CHECKS__gates_sanity__INTERVAL_SECONDS=60\n")
    port = free_port()
    env = unfaked({k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")})
    env |= {"PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable,
        "-m",
        "quantops_exporter",
        "demo",
        "--env-file",
        str(env_file),
        "--web.listen-address",
        f"127.0.0.1:{port}",
    ]
    with subprocess.Popen(
        argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Press Ctrl-C"):
                break
        try:

            def interval() -> float:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    families = text_string_to_metric_families(response.read().decode())
                return next(
                    s.value
                    for f in families
                    for s in f.samples
                    if s.name == "runbook_check_interval_seconds"
                    and s.labels["check"] == "gates_sanity"
                )

            assert interval() == 60
            env_file.write_text("QUANTOPS_CHECKS__gates_sanity__INTERVAL_SECONDS=45\n")
            process.send_signal(signal.SIGHUP)
            wait_until(lambda: interval() == 45, limit=10)
            wait_until(lambda: ok_values(port) == dict.fromkeys(CHECK_NAMES, 1.0), limit=15)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
    assert process.returncode == 0


def christmas_open(noon: datetime) -> float:
    """When the market opens after Christmas noon, by the rule itself: that day's 17:00 opens
    the next trading day unless it falls on the weekend, else the Sunday open."""
    day = noon.date()
    if day.weekday() in (4, 5):  # Friday or Saturday: closed until Sunday 17:00
        day += timedelta(days=6 - day.weekday())
    return noon.replace(year=day.year, month=day.month, day=day.day, hour=17).timestamp()


@pytest.fixture(params=["path as is", "a redis-server on PATH that never answers"])
def search_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """PATH for the demo: as the test runs, or with a Valkey stand-in first that hangs, as
    Debian's redis-server does under libfaketime (it must not be the one the demo uses)."""
    if request.param == "path as is":
        return os.environ["PATH"]
    hung = tmp_path / "bin" / "redis-server"
    hung.parent.mkdir()
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    return f"{hung.parent}{os.pathsep}{os.environ['PATH']}"


def test_demo_at_christmas_runs_the_stack_and_the_daemon_on_one_fake_clock(
    search_path: str,
) -> None:
    """Process, real libfaketime: `demo --at "<next Dec 25> 12:00"` re-runs itself with the
    preload. The daemon's runs are stamped Christmas Day (New York noon), the calendar says
    closed until the next open, the market-hours checks skip themselves, and the simulated
    stack, on the same clock, is in its closed phase with the kill switch ON; a Valkey server
    on PATH that does not answer under libfaketime is not the one it runs."""
    from quantops_exporter.simulator.fakeclock import LIBRARIES, find_library

    try:
        find_library()
    except ValueError:
        require_libfaketime(LIBRARIES[0])
    port = free_port()
    env = unfaked({k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")})
    env |= {
        "QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
        "PATH": search_path,
        "QUANTOPS_CHECKS__gates_sanity__INTERVAL_SECONDS": "2",
        "QUANTOPS_CHECKS__gates_sanity__TIMEOUT_SECONDS": "1",
    }
    christmas = next_dec_25_noon()
    noon = christmas.timestamp()
    argv = [
        sys.executable,
        "-m",
        "quantops_exporter",
        "demo",
        "--at",
        f"{christmas:%Y-%m-%d %H:%M}",
    ]
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
            assert f"clock      {christmas:%Y-%m-%d %H:%M %Z} New York" in text, text
            assert "valkey-server" in text and "/bin/redis-server" not in text, text
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
            assert seen[("runbook_market_next_open_timestamp_seconds", "")] == christmas_open(
                christmas
            )
            assert seen[("runbook_check_failure_reason", "manifold_freshness")] == 1.0
            url = f"{simulator.group(1)}/_sim/week"
            with urllib.request.urlopen(url, timeout=2) as response:
                week = json.loads(response.read())
            assert week["phase"] == "closed" and week["kill_switch"] is True, week
            # The printed recipe works at this moment: not the manifold (its check skips
            # itself while closed) but a check that runs at all hours.
            assert "SET ws:last:manifold" not in text.partition("More ways")[0]
            set_cmd = next(line for line in banner if "SET opt:rolling:gates_blob oops" in line)
            del_cmd = next(line for line in banner if "DEL opt:rolling:gates_blob" in line)
            assert ok_values(port)["gates_sanity"] == 1.0
            subprocess.run(shlex.split(set_cmd), check=True, capture_output=True, env=SHELL)
            wait_until(lambda: ok_values(port)["gates_sanity"] == 0.0, limit=10)
            subprocess.run(shlex.split(del_cmd), check=True, capture_output=True, env=SHELL)
            wait_until(lambda: ok_values(port)["gates_sanity"] == 1.0, limit=20)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
    assert process.returncode == 0
