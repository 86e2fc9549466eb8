"""A 48 MB value where a manifold should be (process test: the real daemon, a real Valkey, the
daemon's own peak RSS from /proc). Issue 10, item 7."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from quantops_exporter.simulator.stack import SepSimulator
from tests.faults.test_reload_process import stack_env
from tests.process import daemon

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


async def test_a_48_mb_manifold_is_refused_within_150_mib(
    sim: SepSimulator, tmp_path: Path
) -> None:
    """Fresh, valid JSON, 48 MB: manifold_freshness ends error/value_too_large (it would be ok
    if read whole), and the daemon's peak RSS stays under 150 MiB."""
    assert sim.server is not None
    huge = json.dumps({"ts": time.time(), "pad": "x" * (48 * MIB)}).encode()
    writer = aioredis.Redis.from_url(sim.server.url)
    await writer.set("ws:last:manifold:XAU_USD", huge)  # an instrument the simulator never writes
    await writer.aclose()
    env = stack_env(sim) | {
        "HOTBAND_PAIRS": ",".join((*sim.instruments, "XAU_USD")),
        "QUANTOPS_CHECKS__manifold_freshness__INTERVAL_SECONDS": "1",
        "QUANTOPS_CHECKS__manifold_freshness__TIMEOUT_SECONDS": "0.9",
    }
    async with daemon(tmp_path, env) as running:

        async def refused() -> bool:
            reason = {"check": "manifold_freshness", "reason": "value_too_large"}
            return await running.metric("runbook_check_failure_reason", **reason) == 1

        await running.until(refused, 20, "manifold_freshness error/value_too_large")
        runs = await running.metric(
            "runbook_check_runs_total", check="manifold_freshness", status="error"
        )
        assert runs is not None and runs >= 1
        _status, body = await running.get("/api/v1/checks/manifold_freshness")
        assert "ws:last:manifold:XAU_USD holds more than the 1048576-byte cap" in body
        assert peak_rss_mib(running.process.pid) < 150
