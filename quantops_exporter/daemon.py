"""What the HTTP layer may ask of the running daemon: a protocol `runtime.Runtime` implements.

The web handlers depend on this and nothing else of the runtime, so dependencies point one way:
`app` wires a `Runtime` (which knows nothing of HTTP) into the web app.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Outcome
from quantops_exporter.generation import Generation


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """Whether a reload was applied, and what to tell whoever asked for it."""

    ok: bool
    message: str


class Refusal(StrEnum):
    """Why an on-demand run was not made."""

    DISABLED = "disabled"  # QUANTOPS_DEBUG_RUNS is off
    UNKNOWN_CHECK = "unknown_check"
    TOO_SOON = "too_soon"  # the same check ran on demand less than the minimum interval ago
    NOT_OPEN = "not_open"  # the sources are not open (starting or stopping)
    BUSY = "busy"  # a run of the check is going on (scheduled or on demand)
    DUE = "due"  # the check's scheduled run falls due before this one would surely end
    STOPPING = "stopping"  # the daemon is stopping


@dataclass(frozen=True, slots=True)
class DebugRun:
    """An on-demand run: its outcome and trace, or why it was refused."""

    outcome: Outcome | None = None
    trace: tuple[dict[str, Any], ...] = ()
    refused: Refusal | None = None
    retry_after: float = 0.0


class Daemon(Protocol):
    """The running daemon as the HTTP layer sees it."""

    @property
    def board(self) -> Board:
        """Every check's latest outcome and history."""
        ...

    @property
    def generation(self) -> Generation:
        """The configuration in force: read it once per request."""
        ...

    async def reload(self) -> ReloadResult:
        """Re-read the configuration; refuse it, keeping the running one, when it is bad."""
        ...

    async def debug_run(self, name: str) -> DebugRun:
        """Run one check now without recording it, or say why not."""
        ...
