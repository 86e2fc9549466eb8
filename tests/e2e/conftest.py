"""e2e fixtures: the simulator on a market the test can close, and the exporter on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from quantops_exporter.app import build_exporter
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.config import DEFAULT_PAIRS
from quantops_exporter.market import Session
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import ValkeyServer, free_port
from tests.conftest import make_generation, patience, require_program


class SwitchableCalendar:
    """A market the test opens and closes (Prometheus runs on real time, so the clock can't)."""

    def __init__(self) -> None:
        self.open = True

    def is_open(self, at: float) -> bool:
        """As the test set it."""
        return self.open

    def open_sessions(self, at: float) -> frozenset[Session]:
        """Every session while open, none while closed."""
        return frozenset(Session) if self.open else frozenset()

    def next_open(self, at: float) -> float | None:
        """Unknown: the test decides (so PreOpenNotReady cannot fire here)."""
        return None

    def next_close(self, at: float) -> float | None:
        """Unknown: the test decides."""
        return None

    def last_open(self, at: float) -> float | None:
        """Unknown: the test decides."""
        return None


# Every check of an in-process exporter: often enough for a test to see several runs, with a
# timeout loopback meets on a loaded machine (the test process runs the simulator, the
# exporter and the test itself on one loop).
CADENCE = {"interval_seconds": 2, "timeout_seconds": 1.5}


def binary(name: str) -> str:
    """A Prometheus or browser tool from Debian's packages (.ci/run installs them)."""
    return require_program(name, "apt-get install prometheus prometheus-alertmanager chromium")


@pytest.fixture
async def stack(own_valkey_server: ValkeyServer) -> AsyncIterator[tuple[SepSimulator, Any]]:
    """The simulator on a market the test can close."""
    calendar = SwitchableCalendar()
    sim = SepSimulator(
        own_valkey_server.url,
        DEFAULT_PAIRS,
        calendar=calendar,
        server=own_valkey_server,
        write_every=0.5,
    )
    await sim.start()
    yield sim, calendar
    await sim.stop()


@asynccontextmanager
async def serving_exporter(stack: tuple[SepSimulator, Any], **values: object) -> AsyncIterator[int]:
    """The exporter, in-process on a real port, every check at CADENCE, on the simulator's
    market; `values` are further settings by field name. Yields its port."""
    sim, calendar = stack
    assert sim.server is not None
    generation = make_generation(
        valkey_url=sim.server.url,
        sep_api_url=sim.api_url,
        allocator_url=sim.allocator_url,
        hotband_pairs=sim.instruments,
        market_hours="fx",
        checks={c.name: CADENCE for c in CHECKS},
        calendar=calendar,
        **values,
    )
    runner = web.AppRunner(build_exporter(generation).app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.fixture
async def exporter(stack: tuple[SepSimulator, Any]) -> AsyncIterator[int]:
    """The exporter on the simulator (see serving_exporter)."""
    async with serving_exporter(stack) as port:
        yield port


async def until(probe: Callable[[], Awaitable[Any]], limit: float, what: str) -> Any:
    """Await `probe()` until it returns something truthy; fail after `limit` seconds."""
    try:
        async with asyncio.timeout(patience(limit)):
            while True:
                try:
                    result = await probe()
                except aiohttp.ClientError:
                    result = None
                if result:
                    return result
                await asyncio.sleep(0.5)
    except TimeoutError:
        pytest.fail(f"not within {patience(limit)}s: {what}")


async def spawn(args: list[str], log: Path, ready_url: str) -> asyncio.subprocess.Process:
    """Start a server process and wait (without blocking the loop) until it is ready."""
    with log.open("wb") as sink:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            *args, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            if process.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text))[-2000:]
                pytest.fail(f"{args[0]} exited: {tail}")
            async with http.get(ready_url) as response:
                return response.status == 200

        await until(ready, 30, f"{args[0]} ready")
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    """Terminate a server process and reap it."""
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
