"""One thread for the CPU-bound work of the daemon: renders of /metrics, parses of the stack's
/metrics, judgements over a thousand instruments.

Everything else shares the one event loop, so work that holds it for 10 or 40 ms makes every
scrape, check and timer wait that long (`quantops_exporter_event_loop_lag_seconds`). The loop
hands such work, a pure function of plain values, to this thread and awaits it. One thread, not
a pool: Python runs one thread at a time (the GIL), so a second busy thread would only make the
loop wait for two. While the thread computes, the loop gets its turn after at most the
interpreter's switch interval, which the daemon lowers to SWITCH_INTERVAL (the default, 5 ms,
would be every wait of the loop's).

Not the loop's default executor: that one also resolves host names for aiohttp, and a slow DNS
answer must not hold a render.

Under libfaketime (`demo --at`, the clock-step process tests) the work runs inline, on the
loop, as it did before this thread: there, a 2 ms job took 2 to 9 s in a second thread
(measured in the real daemon, FAKETIME_DONT_FAKE_MONOTONIC=1, the MT library too: /metrics
timed out at 5 s; inline, 3 ms). libfaketime wraps the clock and wait calls both threads make;
a faked clock is a test and demo tool, where stalls of a few ms matter less than seconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

SWITCH_INTERVAL = 0.001  # seconds a thread holding the GIL keeps it while another waits

P = ParamSpec("P")
T = TypeVar("T")

_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantops-worker")
INLINE = "faketime" in os.environ.get("LD_PRELOAD", "")  # see the module docstring


async def off_loop(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` computed in the worker thread (with this task's context
    variables: a debug run's trace), awaited on the loop; inline under libfaketime."""
    if INLINE:
        return function(*args, **kwargs)
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _WORKER, lambda: context.run(function, *args, **kwargs)
    )


def share_the_interpreter() -> None:
    """Let the loop take its turn from the worker within SWITCH_INTERVAL (the daemon only)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
