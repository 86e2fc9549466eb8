"""Run `python -m quantops_exporter ...` with the CPU time of every event-loop callback recorded.

    STEPCPU_OUT=/tmp/steps.json python benchmarks/stepcpu.py run --web.listen-address ...

The loop-lag histogram the daemon exports is wall time: on a shared machine it also counts the
time the operating system gave the process's core to others. This counts what the loop itself
spent: the thread CPU time (`time.thread_time`, which waits for the GIL or the scheduler do not
advance) of each callback the loop ran, in buckets, with the slowest callbacks named (the task's
coroutine, or the callback). SIGUSR1 writes the figures since the last SIGUSR1 to STEPCPU_OUT (JSON)
and starts anew; instruments.py sends it around each phase.
"""

from __future__ import annotations

import asyncio.events
import json
import os
import runpy
import signal
import sys
import time
from typing import Any

BOUNDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, float("inf"))
_counts = [0] * len(BOUNDS)
_slowest: list[tuple[float, str]] = []
_run = asyncio.events.Handle._run


def _name(handle: asyncio.events.Handle) -> str:
    callback: Any = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return f"task {owner.get_coro().__qualname__}"  # type: ignore[union-attr]
    return getattr(callback, "__qualname__", repr(callback))[:120]


def _timed(self: asyncio.events.Handle) -> None:
    started = time.thread_time()
    _run(self)
    spent = time.thread_time() - started
    for index, bound in enumerate(BOUNDS):
        if spent <= bound:
            _counts[index] += 1
            break
    if spent > 0.002:
        _slowest.append((spent, _name(self)))
        _slowest.sort(reverse=True)
        del _slowest[10:]


def _dump(_signum: int, _frame: object) -> None:
    out = os.environ.get("STEPCPU_OUT")
    if out:
        figures = {"bounds": BOUNDS[:-1], "counts": _counts, "slowest": _slowest}
        with open(out + ".partial", "w") as sink:
            json.dump(figures, sink)
        os.replace(out + ".partial", out)
    _counts[:] = [0] * len(BOUNDS)
    _slowest.clear()


asyncio.events.Handle._run = _timed  # type: ignore[method-assign]
signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["quantops_exporter", *sys.argv[1:]]
runpy.run_module("quantops_exporter", run_name="__main__", alter_sys=True)
