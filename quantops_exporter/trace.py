"""What happened during one on-demand run: I/O events and log lines, like blackbox's ?debug.

A context variable holds the list while `capture()` is active; tasks created inside inherit it,
so concurrent reads of one check land in the same trace. Outside a capture, `trace()` is free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

_current: ContextVar[list[dict[str, Any]] | None] = ContextVar("quantops_trace", default=None)


def trace(event: str, **fields: Any) -> None:
    """Record an event in the active capture, if any."""
    events = _current.get()
    if events is not None:
        events.append({"event": event, "at": round(time.time(), 6), **fields})


def capturing() -> bool:
    """Whether a capture is active here (a debug run is being traced)."""
    return _current.get() is not None


@contextmanager
def capture() -> Iterator[list[dict[str, Any]]]:
    """Collect every trace event and log line emitted inside the block."""
    events: list[dict[str, Any]] = []
    token = _current.set(events)
    try:
        yield events
    finally:
        _current.reset(token)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A read in flight: how to name it (`GET http://api/x`), and the dependency and item (the
    endpoint path or Valkey key) it reads, for the outcome of a run that timed out."""

    what: str
    dependency: str = ""
    item: str = ""


_awaiting: ContextVar[list[Waiting] | None] = ContextVar("quantops_awaiting", default=None)


@contextmanager
def awaiting() -> Iterator[list[Waiting]]:
    """Collect what the block's reads are waiting on (see `waiting_on`): after a timeout, the
    list names what did not answer."""
    pending: list[Waiting] = []
    token = _awaiting.set(pending)
    try:
        yield pending
    finally:
        _awaiting.reset(token)


@contextmanager
def waiting_on(what: str, dependency: str = "", item: str = "") -> Iterator[None]:
    """Mark `what` (e.g. `GET http://api/x`, reading `item` of `dependency`) as awaited for the
    block. A read cancelled by a timeout stays listed: it is what did not answer in time."""
    pending = _awaiting.get()
    if pending is None:
        yield
        return
    waiting = Waiting(what, str(dependency), item)
    pending.append(waiting)
    try:
        yield
    except asyncio.CancelledError:
        raise
    except BaseException:
        pending.remove(waiting)
        raise
    pending.remove(waiting)


def structlog_processor(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """A structlog processor copying log lines into the active capture."""
    events = _current.get()
    if events is not None:
        events.append({"log_level": method, **{k: str(v) for k, v in event_dict.items()}})
    return event_dict
