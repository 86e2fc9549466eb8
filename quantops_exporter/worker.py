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
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

SWITCH_INTERVAL = 0.001  # seconds a thread holding the GIL keeps it while another waits

P = ParamSpec("P")
T = TypeVar("T")

_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantops-worker")


async def off_loop(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` computed in the worker thread (with this task's context
    variables: a debug run's trace), awaited on the loop."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _WORKER, lambda: context.run(function, *args, **kwargs)
    )


def share_the_interpreter() -> None:
    """Let the loop take its turn from the worker within SWITCH_INTERVAL (the daemon only)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
