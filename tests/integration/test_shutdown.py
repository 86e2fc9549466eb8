"""Graceful shutdown of the real daemon: SIGTERM/SIGINT stop it cleanly, exit 0, leak nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import patience

pytestmark = pytest.mark.integration
LEAKS = (
    "Traceback",
    "ResourceWarning",
    "Unclosed",
    "unclosed",
    "Task was destroyed",
    "was never awaited",
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_the_daemon_cleanly(sim: SepSimulator, signum: int) -> None:
    """Under `python -X dev` (which reports leaks), a signal mid-run exits 0 with no leak."""
    assert sim.server is not None
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")} | {
        "VALKEY_URL": sim.server.url,
        "SEP_API_URL": sim.api_url,
        "ALLOCATOR_URL": sim.allocator_url,
        "QUANTOPS_MARKET_HOURS": "always",
        "QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "QUANTOPS_LOG_FORMAT": "json",
        # A slow first run is in flight when the signal lands.
        "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS": "1",
        "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS": "0.5",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        "-m",
        "quantops_exporter",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(patience(20)):  # wait until it serves and its checks have started
        while True:
            line = await process.stderr.readline()
            if not line:
                rest = (await process.stderr.read()).decode()
                pytest.fail(f"the daemon exited before it listened: {rest[-1500:]}")
            if b'"event": "listening"' in line:
                break
    await asyncio.sleep(1.5)
    process.send_signal(signum)
    _out, rest = await asyncio.wait_for(process.communicate(), 20)
    stderr = rest.decode()
    assert process.returncode == 0, stderr[-2000:]
    assert '"event": "stopping"' in stderr
    for leak in LEAKS:
        assert leak not in stderr, stderr[-2000:]
