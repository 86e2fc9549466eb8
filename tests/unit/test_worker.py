"""The worker: CPU-bound work leaves the event loop's thread, keeps the task's context, and
runs inline under libfaketime, where a second thread ran seconds late."""

from __future__ import annotations

import contextvars
import threading

import pytest

from quantops_exporter import worker

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


def where() -> tuple[str, str]:
    """The thread this runs in, and the context variable it sees."""
    return threading.current_thread().name, _seen.get()


async def test_work_runs_in_the_worker_thread_with_the_callers_context() -> None:
    """Off the loop's thread, in the one worker, with the caller's context variables (a debug
    run's trace is one)."""
    _seen.set("debug run")
    thread, seen = await worker.off_loop(where)
    assert thread != threading.current_thread().name
    assert thread.startswith("quantops-worker")
    assert seen == "debug run"


async def test_under_libfaketime_work_runs_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """INLINE (set when LD_PRELOAD names libfaketime): the loop's own thread computes it."""
    monkeypatch.setattr(worker, "INLINE", True)
    thread, _seen_value = await worker.off_loop(where)
    assert thread == threading.current_thread().name
