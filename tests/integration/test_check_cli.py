"""`quantops-exporter check` itself against the simulator: exit code and failing set."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from tests.integration.scenario_expectations import EXPECTED_FAILURES
from tests.moments import clock_at, next_saturday_noon

pytestmark = pytest.mark.integration


async def check_json(sim: SepSimulator, *extra: str) -> tuple[int, list[dict[str, object]]]:
    """Run `python -m quantops_exporter check --json` against `sim` (the loop keeps serving it)."""
    code, rows, _stderr = await check_cli(sim, *extra)
    return code, rows


async def check_cli(
    sim: SepSimulator, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, list[dict[str, object]], str]:
    """`check --json` against `sim`: exit code, rows, stderr."""
    assert sim.server is not None
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")}
        | {
            "VALKEY_URL": sim.server.url,
            "SEP_API_URL": sim.api_url,
            "ALLOCATOR_URL": sim.allocator_url,
            "HOTBAND_PAIRS": ",".join(sim.instruments),
            "QUANTOPS_MARKET_HOURS": "always",
            "QUANTOPS_FLAT_GRACE_SECONDS": "0",
        }
        | (env or {})
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quantops_exporter",
        "check",
        "--json",
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert b"Traceback" not in stderr, stderr.decode()
    assert process.returncode is not None
    return process.returncode, json.loads(stdout), stderr.decode()


# api_slow waits out every API check's timeout: covered by the run_once matrix instead.
@pytest.mark.parametrize("scenario", [s for s in Scenario if s is not Scenario.API_SLOW])
async def test_check_command_per_scenario(sim: SepSimulator, scenario: Scenario) -> None:
    """Healthy exits 0 with every row ok; each fault exits 1 failing exactly its checks."""
    await sim.set_scenario(scenario)
    code, rows = await check_json(sim)
    failing = {row["check"] for row in rows if row["status"] in ("fail", "error")}
    assert failing == EXPECTED_FAILURES[scenario]
    assert code == (1 if failing else 0)


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.fixture
def saturday() -> dict[str, str]:
    """Environment that puts the subprocess's wall clock on a Saturday (market closed)."""
    if not os.path.exists(LIBFAKETIME):
        if os.environ.get("CI"):
            pytest.fail(f"{LIBFAKETIME} missing: apt-get install faketime (.ci/run does)")
        pytest.skip(f"{LIBFAKETIME} missing: apt-get install faketime")
    # The next Saturday, never a fixed one: the simulator writes on the real clock, so its
    # data is days old to this one (a past Saturday put it in the future: clock_skew).
    return {
        "LD_PRELOAD": LIBFAKETIME,
        **clock_at(next_saturday_noon()),
        "QUANTOPS_MARKET_HOURS": "fx",
        "QUANTOPS_KILL_SWITCH_POLICY": "ignore",  # the simulator leaves it off all week
    }


async def test_a_gate_never_passes_because_the_market_is_closed(
    sim: SepSimulator, saturday: dict[str, str]
) -> None:
    """Process test (libfaketime: the CLI's clock on a Saturday). `check --section pre-open`
    used to exit 0 with every market-hours check skipped; now it exits 3 saying what was not
    verified. --assume-open judges them: the simulator's data is days old to that clock,
    so the gate fails, as it must."""
    code, rows, stderr = await check_cli(sim, "--section", "pre-open", env=saturday)
    skipped = {row["check"] for row in rows if row["reason"] == "market_closed"}
    assert code == 3 and skipped >= {"manifold_freshness", "signal_freshness"}, rows
    assert "not verified" in stderr and "--assume-open" in stderr
    assert not {row["check"] for row in rows if row["status"] in ("fail", "error")}
    code, rows, _stderr = await check_cli(
        sim, "--section", "pre-open", "--assume-open", env=saturday
    )
    stale = {row["check"] for row in rows if row["reason"] == "stale"}
    assert code == 1 and "manifold_freshness" in stale, rows


EXPECTED_SECTIONS = {  # the runbook's own step lists (docs/runbook/02_Operations_Runbook.md)
    "pre-open": {
        "valkey_ping",
        "kill_switch",
        "trading_mode",
        "manifold_freshness",
        "signal_freshness",
        "gates_blob_freshness",
        "gates_eligible",
        "gates_sanity",
        "sessions_open",
        "margin_utilisation",
        "allocator_topk",
        "position_caps",
        "no_positions_diagnosis",
    },
    "daily": {
        "allocator_cadence",
        "gates_eligible",
        "allocator_topk",
        "gates_blob_freshness",
        "span_integrity",
        "allocation_status",
    },
    "post-deploy": {"candles", "manifold_freshness", "allocator_health"},
    "troubleshooting": {
        "kill_switch",
        "trading_mode",
        "alloc_budget",
        "allocation_weights",
        "manifold_freshness",
        "signal_freshness",
        "gates_blob_freshness",
        "spread_guard",
        "margin_utilisation",
        "no_positions_diagnosis",
    },
    "recovery": {"margin_utilisation", "spread_guard", "exposure_within_cap"},
}


@pytest.mark.parametrize("section", list(EXPECTED_SECTIONS))
async def test_each_section_runs_every_step_of_its_runbook_section(
    sim: SepSimulator, section: str
) -> None:
    """`--section daily` ran 3 of the 6 Daily Ops Snapshot steps (only each check's first
    section counted); every section now runs every check its runbook steps name, and the
    report ends with a summary line."""
    code, rows, stderr = await check_cli(sim, "--section", section)
    assert {row["check"] for row in rows} == EXPECTED_SECTIONS[section]
    assert code == 0 and f"{len(rows)} checks: {len(rows)} ok" in stderr
