"""Wall-clock steps under the real daemon (a subprocess under libfaketime): NTP steps the clock
back an hour, then forward again, and valkey_ping keeps running on its 3 s cadence, neither
frozen until the wall clock catches up nor bursting to catch up.

Only the daemon's wall clock is faked (FAKETIME_DONT_FAKE_MONOTONIC=1: a step leaves the
monotonic clock alone, as NTP does); the simulated stack runs in this process on the real clock,
so the daemon's freshness checks see data from the future after the step back. That is expected
and beside the point: the test counts runs, whatever their status.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.simulator.stack import SepSimulator
from tests.conftest import require_libfaketime
from tests.faults.test_reload_process import stack_env
from tests.process import Daemon, daemon

pytestmark = pytest.mark.integration

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
INTERVAL = 3.0
WINDOW = 9.0  # three runs of valkey_ping
EXPECTED = WINDOW / INTERVAL
HOUR = 3600.0


def set_offset(clock_file: Path, offset: str) -> None:
    """Move the daemon's wall clock to real time + `offset` (read on every call: NO_CACHE).

    Replaced whole, never rewritten in place: a half-written file would be a step of its own.
    """
    partial = clock_file.with_suffix(".partial")
    partial.write_text(f"{offset}\n")
    partial.replace(clock_file)


async def ping_runs(running: Daemon) -> float:
    """runbook_check_runs_total of valkey_ping, summed over statuses."""
    _status, text = await running.get("/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "runbook_check_runs_total" and sample.labels["check"] == "valkey_ping"
    )


async def runs_in_window(running: Daemon) -> float:
    """How many valkey_ping runs finish over the next WINDOW seconds (of real time)."""
    before = await ping_runs(running)
    await asyncio.sleep(WINDOW)
    return await ping_runs(running) - before


async def test_checks_keep_their_cadence_across_wall_clock_steps(
    sim: SepSimulator, tmp_path: Path
) -> None:
    """Step back 1 h, then forward 1 h: valkey_ping runs about WINDOW / INTERVAL times in each
    window (at least two, at most two more than expected), both steps are logged with their size
    and counted on quantops_exporter_clock_steps_total."""
    library = require_libfaketime(LIBFAKETIME)
    clock_file = tmp_path / "faketime"
    set_offset(clock_file, "+0")
    faked = {
        "LD_PRELOAD": str(library),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    env = stack_env(sim) | {
        "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS": str(INTERVAL),
        "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS": "1",
    }
    async with daemon(tmp_path, env, extra_env=faked) as running:
        await running.until(lambda: ping_runs(running), 10, "the first valkey_ping run")
        steady = await runs_in_window(running)

        set_offset(clock_file, "-1h")  # NTP steps the wall clock back an hour
        after_back = await runs_in_window(running)

        set_offset(clock_file, "+0")  # and forward an hour again
        after_forward = await runs_in_window(running)

        figures = f"runs per {WINDOW:.0f} s: {steady=} {after_back=} {after_forward=}"
        for runs in (steady, after_back, after_forward):
            assert EXPECTED - 1 <= runs <= EXPECTED + 2, f"{figures}\n{running.log()[-1500:]}"
        steps = sorted(event["step_seconds"] for event in running.events("clock_step_detected"))
        assert len(steps) == 2, f"{steps} {figures}"
        assert steps[0] == pytest.approx(-HOUR, abs=2) and steps[1] == pytest.approx(HOUR, abs=2)
        assert await running.metric("quantops_exporter_clock_steps_total") == 2
        assert not await running.metric(
            "quantops_exporter_scheduler_missed_runs_total", check="valkey_ping"
        )
