"""The vocabulary of a check: status, reason, verdict, outcome, and the check row itself."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.sources.health import Dependency

if TYPE_CHECKING:
    from quantops_exporter.market import Calendar
    from quantops_exporter.sources.http import HttpReader
    from quantops_exporter.sources.stack_metrics import StackMetricsReader
    from quantops_exporter.sources.valkey import ValkeyReader


class Status(StrEnum):
    """What a run concluded; a closed set so it can be a label value."""

    OK = "ok"
    FAIL = "fail"  # the stack is unhealthy
    ERROR = "error"  # we could not tell: source down, timeout, bad payload
    SKIPPED = "skipped"  # not expected now (market closed, disabled)


# How reports mark a status: the en dash is the runbook's "not applicable".
MARKS: dict[Status, str] = {
    Status.OK: "\u2713",
    Status.FAIL: "\u2717",
    Status.ERROR: "\u2717",
    Status.SKIPPED: "\u2013",
}


class Reason(StrEnum):
    """Why a run ended as it did; a closed set so it can be a label value."""

    NONE = "none"
    STALE = "stale"
    MISSING = "missing"
    THRESHOLD = "threshold"
    MISMATCH = "mismatch"
    UNEXPECTED_VALUE = "unexpected_value"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    BAD_PAYLOAD = "bad_payload"
    WRONG_TYPE = "wrong_type"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    CLOCK_SKEW = "clock_skew"
    MARKET_CLOSED = "market_closed"
    SESSION_CLOSED = "session_closed"
    INTERNAL_ERROR = "internal_error"


class Source(StrEnum):
    """Freshness sources: the `source` label of the freshness metrics."""

    WS_MANIFOLD = "ws_manifold"
    SIGNAL_INDEX = "signal_index"
    GATES_BLOB = "gates_blob"
    CANDLES = "candles"
    ALLOCATION_WEIGHTS = "allocation_weights"


class Measure(StrEnum):
    """Domain numbers a check reports; each maps to one gauge family in metrics.py."""

    VALKEY_PING_LATENCY = "valkey_ping_latency"
    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    GATES_ELIGIBLE = "gates_eligible"
    GATE_BUFFER = "gate_buffer"
    ALLOCATOR_SELECTED = "allocator_selected"
    ALLOCATOR_TOP_K = "allocator_top_k"
    ALLOCATOR_INTERVAL = "allocator_interval"
    SESSION_OPEN = "session_open"
    MARGIN_UTILISATION = "margin_utilisation"
    ALLOCATION_TOTAL = "allocation_total"
    POSITION_MARGIN_RATIO = "position_margin_ratio"
    OPEN_POSITIONS = "open_positions"
    SPREAD_BPS = "spread_bps"
    CANDLES = "candles"
    DIAGNOSIS_STEP = "diagnosis_step"
    UNCONFIGURED_INSTRUMENTS = "unconfigured_instruments"


@dataclass(frozen=True, slots=True)
class Freshness:
    """When one source last updated, for one configured instrument ("" for a global source)."""

    source: Source
    instrument: str
    updated_at: float | None  # epoch seconds; None when missing or unreadable


@dataclass(frozen=True, slots=True)
class Reading:
    """One domain number with its label values (label names are fixed per Measure)."""

    measure: Measure
    value: float
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a pure evaluator concluded from what a check read."""

    status: Status
    reason: Reason
    summary: str
    freshness: tuple[Freshness, ...] = ()
    readings: tuple[Reading, ...] = ()
    observations: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A verdict stamped with the check that produced it, when it started, how long it took and
    whether the check was expected to be healthy at that moment."""

    check: str
    verdict: Verdict
    started_at: float
    duration: float
    expected: bool

    @property
    def status(self) -> Status:
        """The verdict's status."""
        return self.verdict.status

    @property
    def reason(self) -> Reason:
        """The verdict's reason."""
        return self.verdict.reason

    @property
    def summary(self) -> str:
        """The verdict's one-line summary."""
        return self.verdict.summary

    @property
    def freshness(self) -> tuple[Freshness, ...]:
        """The verdict's freshness stamps."""
        return self.verdict.freshness

    @property
    def readings(self) -> tuple[Reading, ...]:
        """The verdict's domain numbers."""
        return self.verdict.readings

    @property
    def observations(self) -> Mapping[str, object]:
        """What the check saw, for the JSON API."""
        return self.verdict.observations

    @property
    def healthy(self) -> bool:
        """ok and skipped count as healthy; fail and error do not."""
        return self.verdict.status in (Status.OK, Status.SKIPPED)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may touch: read-only sources, the calendar, the clock and the knobs."""

    valkey: ValkeyReader
    http: HttpReader
    stack_metrics: StackMetricsReader
    calendar: Calendar
    clock: Callable[[], float]
    instruments: tuple[str, ...]
    thresholds: Thresholds
    api_url: str
    allocator_url: str
    memory: CheckMemory = field(default_factory=CheckMemory)


Run = Callable[[CheckContext], Awaitable[Verdict]]


def with_unconfigured(
    verdict: Verdict, check: str, seen: Iterable[str], instruments: Iterable[str]
) -> Verdict:
    """Add how many instruments the data named that HOTBAND_PAIRS does not (cardinality guard:
    names read off the wire never become label values; they are only counted, per check)."""
    unknown = set(seen) - set(instruments)
    reading = Reading(Measure.UNCONFIGURED_INSTRUMENTS, float(len(unknown)), (check,))
    return dataclasses.replace(verdict, readings=(*verdict.readings, reading))


A = TypeVar("A")
B = TypeVar("B")


async def read_both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await two reads concurrently and let both finish, then raise the first error.

    Not a TaskGroup: a group cancels the sibling of a failed read, and DependencyHealth takes a
    cancelled request for a hung dependency, so an API outage would mark Valkey down too.
    """
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Check:
    """One runbook check: its label name, runbook step and anchor, cadence, timeout, what it runs
    and the dependencies it reads."""

    name: str
    runbook: str
    section: str
    anchor: str  # the runbook heading this check's remedy is under (a GitHub heading slug)
    description: str
    interval: float
    run: Run
    timeout: float = 5.0
    market_hours_only: bool = False
    dependencies: tuple[Dependency, ...] = ()
    enabled: bool = True
