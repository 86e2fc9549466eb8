"""The scrapers instruments.py runs against the daemon, and the loop lag the daemon measures.

Scrapers (each `wrk -t1 -c1`: one connection, one scrape after another, a flood of them):

  plain       no Accept, no Accept-Encoding (curl): text 0.0.4, not compressed
  prometheus  what Prometheus sends: OpenMetrics preferred, gzip accepted
  rotation    gzip accepted, the Accept header rotating through seven negotiable formats (text
              0.0.4; OpenMetrics 1.0.0 plain, underscores, allow-utf-8, dots, values; 2.0.0):
              a client that made every request cost a render when only four were kept

Loop lag: `quantops_exporter_event_loop_lag_seconds`, the daemon's own histogram of how late a
20 ms timer fired (10 ms before 2026-12-07 05:00 UTC), read from /metrics before and after a phase.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LAG = "quantops_exporter_event_loop_lag_seconds"
STALL_LIMIT = 0.005  # issue 21: no loop stall longer than 5 ms

# What Prometheus 2.x sends (it negotiates OpenMetrics and accepts gzip).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
}
ROTATING_ACCEPTS = (
    "text/plain;version=0.0.4",
    "application/openmetrics-text;version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",
    "application/openmetrics-text;version=2.0.0",
)
SCRAPERS: Mapping[str, Mapping[str, str]] = {
    "plain": {},
    "prometheus": PROMETHEUS_HEADERS,
    "rotation": {"Accept-Encoding": "gzip"},
}


def rotation_script(directory: Path) -> Path:
    """A wrk Lua script sending the next of ROTATING_ACCEPTS with each request."""
    accepts = ", ".join(f'"{accept}"' for accept in ROTATING_ACCEPTS)
    script = directory / "rotate-accept.lua"
    script.write_text(
        f"local accepts = {{ {accepts} }}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #accepts + 1\n"
        '  wrk.headers["Accept"] = accepts[i]\n'
        "  return wrk.format(nil, nil)\n"
        "end\n"
    )
    return script


def lag_buckets(samples: list[tuple[str, dict[str, str], float]]) -> dict[float, float]:
    """The cumulative lag buckets (le -> count) among parsed /metrics samples."""
    return {
        float(labels["le"]): value for name, labels, value in samples if name == f"{LAG}_bucket"
    }


@dataclass(frozen=True)
class Lag:
    """The loop lag over one phase: samples, how many above STALL_LIMIT, and the bucket bounds
    that hold the 99th percentile and the largest sample (upper bounds, in seconds)."""

    samples: int
    over_limit: int
    p99: float
    largest: float

    @classmethod
    def between(cls, before: Mapping[float, float], after: Mapping[float, float]) -> Lag:
        """The samples taken between two readings of the buckets."""
        delta = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
        total = delta.get(math.inf, 0.0)
        at_limit = delta.get(STALL_LIMIT, 0.0)
        p99 = largest = 0.0
        for le, count in delta.items():
            if not p99 and count >= 0.99 * total:
                p99 = le
            if count < total:
                largest = le  # some sample is above this bound: the largest is beyond it
        bounds = sorted(delta)
        largest_bound = bounds[bounds.index(largest) + 1] if largest else bounds[0]
        return cls(int(total), int(total - at_limit), p99, largest_bound)

    def cell(self) -> str:
        """`p99 ≤ 2 ms, max ≤ 5 ms, 0 of 812 > 5 ms` (bounds of the buckets they fell in)."""
        if not self.samples:
            return "—"
        return (
            f"p99 ≤ {_ms(self.p99)}, max ≤ {_ms(self.largest)}, "
            f"{self.over_limit:,} of {self.samples:,} > {_ms(STALL_LIMIT)}"
        )


def _ms(seconds: float) -> str:
    return "∞" if math.isinf(seconds) else f"{seconds * 1000:g} ms"


@dataclass(frozen=True)
class Steps:
    """The CPU time of the daemon's event-loop callbacks over one phase (stepcpu.py): how many
    ran, how many took more than STALL_LIMIT, the bucket bound the longest fell under, and the
    slowest few by name."""

    callbacks: int
    over_limit: int
    longest: float
    slowest: tuple[tuple[float, str], ...]

    @classmethod
    def read(cls, path: Path) -> Steps:
        """The figures stepcpu.py wrote."""
        figures = json.loads(path.read_text())
        bounds = [*figures["bounds"], math.inf]
        counts = figures["counts"]
        over = sum(c for b, c in zip(bounds, counts, strict=True) if b > STALL_LIMIT)
        longest = max((b for b, c in zip(bounds, counts, strict=True) if c), default=0.0)
        slowest = tuple((float(s), str(n)) for s, n in figures["slowest"])
        return cls(sum(counts), over, longest, slowest)

    def cell(self) -> str:
        """`0 of 52,311 > 5 ms CPU (longest ≤ 2 ms)`, and the slowest callback when one is over."""
        if not self.callbacks:
            return "—"
        text = (
            f"{self.over_limit:,} of {self.callbacks:,} > {_ms(STALL_LIMIT)} "
            f"(longest ≤ {_ms(self.longest)})"
        )
        if self.slowest:
            spent, name = self.slowest[0]
            text += f"; slowest {spent * 1000:.1f} ms: {name}"
        return text
