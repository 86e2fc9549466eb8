"""The board: the latest outcome of every check, the single source of truth for every view.

The scheduler writes to it; /metrics, the JSON API and `check` only read it. Listeners (the
metrics that accumulate, such as histograms and counters) hear of every outcome once, when it is
recorded, so nothing is computed at scrape time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import structlog

from quantops_exporter.checks.base import Check, Outcome
from quantops_exporter.checks.verdict import Status

Listener = Callable[[Outcome], None]
Watcher = Callable[[], None]
HISTORY_LENGTH = 20

log = structlog.get_logger("quantops_exporter.board")


@dataclass(slots=True)
class CheckState:
    """What the board knows about one check."""

    check: Check
    latest: Outcome | None = None
    last_success_at: float | None = None
    history: deque[Outcome] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))


class Board:
    """Latest outcome, last success and a short history per check."""

    def __init__(self, checks: Iterable[Check]) -> None:
        self._states = {check.name: CheckState(check) for check in checks}
        self._listeners: list[Listener] = []
        self._watchers: list[Watcher] = []

    def reconfigure(self, checks: Iterable[Check]) -> None:
        """Take a new catalog (a reload): checks that remain keep their outcome and history.

        New rows replace the old ones, so a reader still holding the old states sees the old
        configuration whole, never a mix.
        """
        old = self._states
        states = {}
        for check in checks:
            kept = old.get(check.name)
            states[check.name] = (
                CheckState(check, kept.latest, kept.last_success_at, kept.history)
                if kept is not None
                else CheckState(check)
            )
        self._states = states
        self._notify()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every outcome recorded from now on."""
        self._listeners.append(listener)

    def on_change(self, watcher: Watcher) -> None:
        """Call `watcher()` after every change from now on: an outcome recorded, a new catalog."""
        self._watchers.append(watcher)

    def _notify(self) -> None:
        for watcher in self._watchers:
            watcher()

    @property
    def states(self) -> Mapping[str, CheckState]:
        """Every configured check's state, in catalog order."""
        return MappingProxyType(self._states)

    def record(self, outcome: Outcome) -> None:
        """Store `outcome` as the check's latest; log it when the status or reason changed.

        A run that finishes after a reload removed its check is dropped.
        """
        state = self._states.get(outcome.check)
        if state is None:
            return
        previous = state.latest
        state.latest = outcome
        state.history.append(outcome)
        if outcome.status is Status.OK:
            state.last_success_at = outcome.started_at
        if previous is None or (previous.status, previous.reason) != (
            outcome.status,
            outcome.reason,
        ):
            _log_transition(previous, outcome)
        for listener in self._listeners:
            listener(outcome)
        self._notify()

    def ready(self) -> bool:
        """True once every enabled check has run at least once."""
        return all(s.latest is not None for s in self._states.values() if s.check.enabled)


def _log_transition(previous: Outcome | None, outcome: Outcome) -> None:
    recovered = previous is not None and not previous.healthy and outcome.healthy
    event = "check_recovered" if recovered else "check_status"
    level = "info" if outcome.healthy else "warning"
    getattr(log, level)(
        event,
        check=outcome.check,
        status=outcome.status.value,
        reason=outcome.reason.value,
        previous_status=previous.status.value if previous else None,
        previous_reason=previous.reason.value if previous else None,
        summary=outcome.summary,
    )
