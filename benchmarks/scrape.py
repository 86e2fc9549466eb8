"""How long one /metrics render takes with a full board (no I/O is involved in a scrape).

Run: make bench  (or python benchmarks/scrape.py [--scrapes N])
"""

from __future__ import annotations

import argparse
import gzip
import resource
import statistics
import time

from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Outcome
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Freshness, Reason, Source, Status, Verdict
from quantops_exporter.config import DEFAULT_PAIRS
from quantops_exporter.log import configure_logging
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import Dependency, DependencyHealth


def full_board() -> tuple[Board, DependencyHealth]:
    """Every check with an outcome carrying freshness for all eight instruments."""
    board = Board(CHECKS)
    health = DependencyHealth()
    for dep in Dependency:
        health.mark(dep, True)
    now = time.time()
    for check in CHECKS:
        fresh = tuple(Freshness(Source.WS_MANIFOLD, inst, now - 5) for inst in DEFAULT_PAIRS)
        for _ in range(50):  # fill histograms and history
            board.record(
                Outcome(
                    check.name,
                    Verdict(Status.OK, Reason.NONE, "ok", freshness=fresh),
                    started_at=now,
                    duration=0.003,
                    expected=True,
                )
            )
    return board, health


def main() -> None:
    """Print render timings in milliseconds and the process's peak RSS."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("json", "error")  # the board logs transitions; not what is measured
    board, health = full_board()
    registry, _ = build_registry(board, health, CHECKS)
    for name, render in (("text", generate_latest), ("openmetrics", generate_openmetrics)):
        timings = []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            body = render(registry)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        print(
            f"{name:<12} {len(body):>7} bytes ({len(gzip.compress(body)):>6} gzipped)  "
            f"median {statistics.median(timings):.3f} ms  "
            f"p99 {timings[int(len(timings) * 0.99)]:.3f} ms  over {args.scrapes} renders"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:.1f} MiB")


if __name__ == "__main__":
    main()
