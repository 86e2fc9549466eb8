"""What one /metrics scrape costs with a full board: rendered per scrape (before) and served from
the stored exposition (after), in process and over HTTP, at 8 and at 1,000 instruments.

Run: make bench  (or python benchmarks/scrape.py [--scrapes N] [--instruments 8,1000])

Lines, per board size:
  render        prometheus_client's generate_latest per scrape (the old /metrics), and the same
                with gzip at aiohttp's level (the old handler compressed every answer)
  served        Exposition.serve from the stored bytes: the live process_* samples rendered and
                appended, gzip by copying the stored compressor
  re-render     what one change costs: every kind in use rendered again, in the worker thread
  http          GET /metrics over a loopback connection, gzip accepted, as Prometheus scrapes:
                the old handler (make_aiohttp_handler) and the new one (web.metrics)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import resource
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Outcome
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Freshness, Reason, Source, Status, Verdict
from quantops_exporter.config import DEFAULT_PAIRS
from quantops_exporter.exposition import ExposedRegistry, Exposition, exposition_of
from quantops_exporter.log import configure_logging
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.web import EXPOSITION_KEY, metrics

TEXT = ""  # no Accept header: Prometheus text 0.0.4
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
FORMATS = (("text", TEXT), ("openmetrics", OPENMETRICS))
# The checks that report a freshness row per instrument, and the source each reads.
PER_INSTRUMENT = {"manifold_freshness": Source.WS_MANIFOLD, "signal_freshness": Source.SIGNAL_INDEX}


def instruments(count: int) -> tuple[str, ...]:
    """The default eight pairs, or `count` made-up instruments."""
    if count == len(DEFAULT_PAIRS):
        return tuple(DEFAULT_PAIRS)
    return tuple(f"INST{i:04d}" for i in range(count))


def full_board(count: int = len(DEFAULT_PAIRS)) -> tuple[Board, DependencyHealth]:
    """Every check with an outcome; the per-instrument freshness checks carry `count` rows each."""
    board = Board(CHECKS)
    health = DependencyHealth()
    for dep in Dependency:
        health.mark(dep, True)
    now = time.time()
    names = instruments(count)
    for check in CHECKS:
        source = PER_INSTRUMENT.get(check.name)
        fresh = tuple(Freshness(source, i, now - 5) for i in names) if source else ()
        for _ in range(50):  # fill histograms and history
            board.record(outcome(check.name, fresh, now))
    return board, health


def outcome(check: str, fresh: tuple[Freshness, ...], now: float) -> Outcome:
    """An ok outcome of `check` carrying `fresh`."""
    verdict = Verdict(Status.OK, Reason.NONE, "ok", freshness=fresh)
    return Outcome(check, verdict, started_at=now, duration=0.003, expected=True)


def timed(call: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds per call, sorted."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


async def timed_async(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    """Milliseconds per awaited call, sorted."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def line(label: str, timings: list[float], size: str = "") -> str:
    """One result line: median and p99."""
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return (
        f"  {label:<28} {size:>24}  median {statistics.median(timings):8.3f} ms"
        f"  p99 {p99:8.3f} ms  ({len(timings)} runs)"
    )


def gzipped(body: bytes) -> bytes:
    """gzip at zlib's default level, as aiohttp compressed the old handler's answers."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def render(registry: CollectorRegistry, runs: int) -> None:
    """The old path: the whole registry rendered per scrape."""
    for name, encoder in (("text", generate_latest), ("openmetrics", generate_openmetrics)):
        body = encoder(registry)
        size = f"{len(body):>8} B ({len(gzip.compress(body)):>6} gz)"
        print(line(f"render {name}", timed(partial(encoder, registry), runs), size))
        both = partial(lambda e: gzipped(e(registry)), encoder)
        print(line(f"render {name} + gzip", timed(both, runs)))


async def served(registry: ExposedRegistry, runs: int) -> None:
    """The new path: stored bytes, the live samples appended."""
    exposition = registry.exposition
    for name, accept in FORMATS:
        for compress in (False, True):
            await exposition.serve(accept, gzip=compress)  # the first one renders
            renders = exposition.renders
            timings = await timed_async(partial(exposition.serve, accept, gzip=compress), runs)
            assert exposition.renders == renders, "a scrape rendered: the benchmark changed nothing"
            size = f"{len((await exposition.serve(accept, gzip=compress)).body):>8} B"
            print(line(f"served {name}{' gzip' if compress else ''}", timings, size))


async def rerender(count: int, runs: int) -> None:
    """One change (an outcome recorded), then a render of the kinds in use (in the worker
    thread, as the daemon renders): what a scrape that needs a render waits for."""
    fresh = tuple(Freshness(Source.WS_MANIFOLD, i, time.time()) for i in instruments(count))
    for label, accepts in (
        ("openmetrics", [OPENMETRICS]),
        ("text + openmetrics", [TEXT, OPENMETRICS]),
    ):
        board, health = full_board(count)
        registry, _ = build_registry(board, health, CHECKS)
        exposition = exposition_of(registry)
        for accept in accepts:
            await exposition.serve(accept, gzip=True)

        async def change_and_render(
            board: Board = board, exposition: Exposition = exposition
        ) -> None:
            board.record(outcome("manifold_freshness", fresh, time.time()))
            await exposition.render()

        timings = await timed_async(change_and_render, max(20, runs // 10))
        print(line(f"re-render {label}", timings))


async def http(registry: ExposedRegistry, runs: int) -> None:
    """GET /metrics over loopback with gzip accepted: the old handler, then the new one."""
    old = web.Application()
    old.router.add_get("/metrics", make_aiohttp_handler(registry))
    new = web.Application()
    new[EXPOSITION_KEY] = exposition_of(registry)
    new.router.add_get("/metrics", metrics)
    for label, app in (("old", old), ("new", new)):
        async with TestServer(app) as server, ClientSession() as session:
            url = str(server.make_url("/metrics"))
            for name, accept in FORMATS:
                headers = {"Accept": accept, "Accept-Encoding": "gzip"}
                timings = []
                for _ in range(runs):
                    started = time.perf_counter()
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                    timings.append((time.perf_counter() - started) * 1000)
                print(line(f"http {label} {name}", sorted(timings)))


def main() -> None:
    """Print timings in milliseconds per board size, and the process's peak RSS."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--instruments", default="8,1000", help="board sizes, comma-separated")
    parser.add_argument("--no-http", action="store_true", help="skip the loopback HTTP runs")
    args = parser.parse_args()
    configure_logging("json", "error")  # the board logs transitions; not what is measured
    for count in (int(n) for n in args.instruments.split(",")):
        board, health = full_board(count)
        registry, _ = build_registry(board, health, CHECKS)
        assert isinstance(registry, ExposedRegistry)
        print(f"{count} instruments ({count_series(registry.collect())} series)")
        render(registry, args.scrapes)
        asyncio.run(served(registry, args.scrapes))
        asyncio.run(rerender(count, args.scrapes))
        if not args.no_http:
            asyncio.run(http(registry, max(100, args.scrapes // 4)))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:.1f} MiB")


def count_series(families: Iterable[Metric]) -> int:
    """How many samples the registry exposes."""
    return sum(len(family.samples) for family in families)


if __name__ == "__main__":
    main()
