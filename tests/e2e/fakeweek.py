"""A moment of the week lived by real processes: `quantops-exporter demo` (the simulated stack on
FX hours, its Valkey and a daemon) under libfaketime on a SharedClock (tests/moments.py), and
whatever else a test launches on the same clock, such as `check --wait`.

At a speed-up the checks' timeouts would shrink with the clock (5 s of a 10x clock is half a
real second, less than loopback may need on a loaded machine): `real_timeouts` gives each check
back its timeout in real seconds, within its interval for the daemon (whose cadence is the
point), whole for a one-shot `check` (whose intervals do nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import clean_env, require_libfaketime
from tests.e2e.conftest import until
from tests.moments import SharedClock

# The thread-safe build, as libfaketime advises for threaded programs (Valkey, the executor).
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
STARTS_WITHIN = 90.0  # real seconds for the demo to listen, on a loaded 2-core machine


def real_timeouts(speed: float, *, keep_intervals: bool) -> dict[str, str]:
    """QUANTOPS_CHECKS__*__TIMEOUT_SECONDS (and, for a one-shot check, the intervals the
    validation asks to be longer) so that every check's timeout lasts as many real seconds at
    `speed` as it does at speed 1."""
    env = {}
    for check in CHECKS:
        timeout = check.timeout * speed
        if keep_intervals:
            timeout = min(timeout, check.interval * 0.9)
        else:
            env[f"QUANTOPS_CHECKS__{check.name}__INTERVAL_SECONDS"] = f"{timeout + 1:g}"
        env[f"QUANTOPS_CHECKS__{check.name}__TIMEOUT_SECONDS"] = f"{timeout:g}"
    return env


def inherited_env(speed: float) -> dict[str, str]:
    """This process's environment for a demo or check on a clock at `speed` (settings
    removed; coverage's too at a faster clock)."""
    env = clean_env()
    if speed != 1:
        # Coverage's tracing slows a process two- to threefold: too much for a faster clock.
        env = {k: v for k, v in env.items() if not k.startswith(("COV_", "COVERAGE_"))}
    return env


@dataclass
class Demo:
    """A running demo: where its parts listen, its log, and its clock."""

    process: asyncio.subprocess.Process
    log: Path
    clock: SharedClock
    exporter: str = ""
    api: str = ""
    allocator: str = ""
    valkey: str = ""

    def text(self) -> str:
        """Everything the demo printed and logged so far."""
        return demo_output(self.log)

    def check_env(self, **extra: str) -> dict[str, str]:
        """The environment of a `check` process on this demo's stack and clock, launched now."""
        return (
            inherited_env(self.clock.speed)
            | {
                "LD_PRELOAD": str(LIBFAKETIME),
                "QUANTOPS_MARKET_HOURS": "fx",
                "VALKEY_URL": self.valkey,
                "SEP_API_URL": self.api,
                "ALLOCATOR_URL": self.allocator,
                "PYTHONUNBUFFERED": "1",
            }
            | real_timeouts(self.clock.speed, keep_intervals=False)
            | self.clock.env()
            | extra
        )

    async def checks(self) -> list[dict[str, object]]:
        """The demo daemon's board (GET /api/v1/checks)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(f"{self.exporter}/api/v1/checks") as response,
        ):
            rows: list[dict[str, object]] = (await response.json())["checks"]
            return rows


def demo_output(printed: Path) -> str:
    """What a demo printed (to `printed`: its banner, once it listens) and then its daemon's
    log, from the file the banner names (the demo logs there so the banner stays on screen)."""
    text = printed.read_text(errors="replace")
    named = re.search(r"^  logs\s+(\S+)", text, re.MULTILINE)
    if named is None or not Path(named[1]).is_file():
        return text
    return text + "\n" + Path(named[1]).read_text(errors="replace")


async def _listening(demo: Demo) -> bool:
    text = await asyncio.to_thread(demo.text)
    if demo.process.returncode is not None:
        raise AssertionError(f"the demo exited: {text[-2000:]}")
    banner = {
        part: re.search(rf"^  {part}\s+(\S+)", text, re.MULTILINE)
        for part in ("simulator", "allocator", "valkey")
    }
    if "Press Ctrl-C to stop." not in text or not all(banner.values()):
        return False  # the banner comes once the daemon listens
    simulator, allocator, valkey = (found[1] for found in banner.values() if found)
    demo.api, demo.valkey = simulator, valkey
    demo.allocator = allocator.removesuffix("/status")
    return True


@asynccontextmanager
async def demo_at(
    tmp_path: Path, clock: SharedClock, scenario: Scenario = Scenario.HEALTHY
) -> AsyncIterator[Demo]:
    """`quantops-exporter demo` on FX hours at `clock`'s time (the clock starts now), until
    the block ends; SIGTERM then (its process group if it hangs)."""
    library = require_libfaketime(LIBFAKETIME)
    port = free_port()
    env = (
        inherited_env(clock.speed)
        | {
            "QUANTOPS_MARKET_HOURS": "fx",
            "QUANTOPS_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            "LD_PRELOAD": str(library),
        }
        | real_timeouts(clock.speed, keep_intervals=True)
        | clock.env()
    )
    log = tmp_path / f"demo-{port}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "quantops_exporter",
            "demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--scenario",
            scenario.value,
            env=env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,  # its Valkey server too: one group to end if it hangs
        )
    demo = Demo(process, log, clock, exporter=f"http://127.0.0.1:{port}")
    try:
        await until(lambda: _listening(demo), STARTS_WITHIN, f"the demo listening ({log})")
        yield demo
    finally:
        await stop_demo(process)


async def stop_demo(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the demo (it stops its daemon, simulator and Valkey); its group if it hangs."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def run_check(env: Mapping[str, str], *args: str, limit: float) -> tuple[int, str, str]:
    """`quantops-exporter check ARGS` with `env`: exit code, stdout, stderr (within `limit`
    real seconds, else an AssertionError with what it printed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quantops_exporter",
        "check",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        raise AssertionError(
            f"check {' '.join(args)} still running after {limit}s: {stderr.decode()[-2000:]}"
        ) from None
    assert process.returncode is not None
    assert b"Traceback" not in stderr, stderr.decode()
    return process.returncode, stdout.decode(), stderr.decode()
