"""The board: the latest outcome of every check, the single source of truth for every view.

The scheduler writes to it; /metrics, the JSON API and `check` only read it. Listeners (the
metrics that accumulate, such as histograms and counters) hear of every outcome once, when it is
recorded, so nothing is computed at scrape time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import structlog

from quantops_exporter.checks.base import Check, Outcome
from quantops_exporter.checks.catalog import Section, sections_of
from quantops_exporter.checks.verdict import Reason, Status, Verdict

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

        A run that finishes after a reload removed or disabled its check is dropped.
        """
        state = self._states.get(outcome.check)
        if state is None or not state.check.enabled:
            return
        previous = state.latest
        state.latest = outcome
        state.history.append(_slim(outcome))
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


@dataclass(frozen=True, slots=True)
class SectionReadiness:
    """Whether a runbook section's checklist holds now, judged on its enabled checks' latest
    outcomes as `check --section` judges them (exit 0 only when this is ok)."""

    section: Section
    checks: tuple[str, ...]  # the enabled checks its steps name
    failing: tuple[str, ...]  # fail or error while expected
    unverified: tuple[str, ...]  # not run yet, or skipped because the market is closed
    # fail or error while not expected (the warm-up after an open): not green yet, not a fault
    not_expected: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every check passed, or skipped by its own judgement (no intended session open)."""
        return not self.failing and not self.unverified and not self.not_expected


def section_readiness(states: Iterable[CheckState], section: Section) -> SectionReadiness:
    """Judge `section` on the latest outcome of each enabled check its steps name.

    A check skipped because the market is closed verified nothing, so it does not count as
    passing (a gate never passes on nothing); a check that skips itself because trading is not
    intended now (sessions_open outside the intended sessions) does. A check that failed while
    not expected (the warm-up after an open) is not green yet, but not failing either: the page
    shows it as not expected, like the alerts. A disabled check is not judged: its last verdict
    is kept but nobody asked for it.
    """
    return _judge(
        section, [s for s in states if s.check.enabled and section in sections_of(s.check)]
    )


def readiness_by_section(states: Iterable[CheckState]) -> tuple[SectionReadiness, ...]:
    """Every runbook section's readiness, in runbook order (each check's sections read once)."""
    enabled = [(state, sections_of(state.check)) for state in states if state.check.enabled]
    return tuple(
        _judge(section, [state for state, of in enabled if section in of]) for section in Section
    )


def _judge(section: Section, judged: list[CheckState]) -> SectionReadiness:
    failing: list[str] = []
    unverified: list[str] = []
    not_expected: list[str] = []
    for state in judged:
        latest = state.latest
        if latest is None or latest.reason is Reason.MARKET_CLOSED:
            unverified.append(state.check.name)
        elif latest.status in (Status.FAIL, Status.ERROR):
            (failing if latest.expected else not_expected).append(state.check.name)
    return SectionReadiness(
        section,
        tuple(s.check.name for s in judged),
        tuple(failing),
        tuple(unverified),
        tuple(not_expected),
    )


def _slim(outcome: Outcome) -> Outcome:
    """`outcome` as the history keeps it: status, reason, summary and times (what the JSON API
    and the status page read of past runs), without its rows per instrument. Twenty runs of
    a thousand rows each were 80,000 objects for every full garbage collection to walk: 7.7 ms
    of the event loop (or the worker) each time one ran."""
    verdict = outcome.verdict
    if not (verdict.freshness or verdict.readings or verdict.observations):
        return outcome
    return replace(outcome, verdict=Verdict(verdict.status, verdict.reason, verdict.summary))


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
