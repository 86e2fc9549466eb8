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

pytestmark = pytest.mark.integration


async def check_json(sim: SepSimulator, *extra: str) -> tuple[int, list[dict[str, object]]]:
    """Run `python -m quantops_exporter check --json` against `sim` (the loop keeps serving it)."""
    assert sim.server is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")} | {
        "VALKEY_URL": sim.server.url,
        "SEP_API_URL": sim.api_url,
        "ALLOCATOR_URL": sim.allocator_url,
        "HOTBAND_PAIRS": ",".join(sim.instruments),
        "QUANTOPS_MARKET_HOURS": "always",
        "QUANTOPS_FLAT_GRACE_SECONDS": "0",
    }
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
    return process.returncode, json.loads(stdout)


# api_slow waits out every API check's timeout: covered by the run_once matrix instead.
@pytest.mark.parametrize("scenario", [s for s in Scenario if s is not Scenario.API_SLOW])
async def test_check_command_per_scenario(sim: SepSimulator, scenario: Scenario) -> None:
    """Healthy exits 0 with every row ok; each fault exits 1 failing exactly its checks."""
    await sim.set_scenario(scenario)
    code, rows = await check_json(sim)
    failing = {row["check"] for row in rows if row["status"] in ("fail", "error")}
    assert failing == EXPECTED_FAILURES[scenario]
    assert code == (1 if failing else 0)
