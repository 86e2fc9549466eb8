"""How long the event loop keeps a ready callback waiting: a timer due every INTERVAL seconds,
and how late it fires, as a histogram (prom-client's `nodejs_eventloop_lag_seconds`, sampled
as Node's monitorEventLoopDelay samples it, but every 50 ms rather than 10: each wake-up of
an asyncio loop costs CPU, and the idle budget is 1 % of a core. `benchmarks/instruments.py`
at 1,000 instruments, quiet machine, idle CPU: no probe 0.45 %, every 50 ms 0.71 %, every
20 ms 1.15 %, every 10 ms ~2 %).

Everything the daemon does shares its one event loop: a scrape, a check's I/O, a reload. A
callback that holds the loop (a render, a parse, a blocked write to a full log pipe) makes each
of them wait; the timer waits too, and its lateness is that wait. A stall of S seconds shows as
one observation between S - INTERVAL and S: a stall longer than INTERVAL always shows, a
shorter one in proportion to its length. The loop's own timer granularity (epoll counts
milliseconds) puts a quiet loop's figures under a millisecond.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Histogram

INTERVAL = 0.05  # seconds between two samples
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
NAME = "quantops_exporter_event_loop_lag_seconds"


class LoopLag:
    """Samples the running loop's lag into `quantops_exporter_event_loop_lag_seconds` between
    `start()` and `stop()`."""

    def __init__(self, registry: CollectorRegistry, interval: float = INTERVAL) -> None:
        self.histogram = Histogram(
            NAME,
            f"How late a timer due every {interval * 1000:g} ms fired: how long the event loop "
            "kept ready work waiting (a stall of S seconds is one sample near S)",
            buckets=BUCKETS,
            registry=registry,
        )
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Sample the running loop from now on."""
        self.stop()
        self._loop = asyncio.get_running_loop()
        self._arm(self._loop.time())

    def stop(self) -> None:
        """Stop sampling."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop = None

    def _arm(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self._interval
        self._timer = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self.histogram.observe(max(0.0, now - self._due))
        self._arm(now)
