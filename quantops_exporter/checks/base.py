"""The vocabulary of a check: status, reason, verdict, outcome, and the check row itself."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.sources.health import Dependency

if TYPE_CHECKING:
    from quantops_exporter.market import Calendar
    from quantops_exporter.sources.http import HttpReader
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
    """A verdict stamped with the check that produced it and when."""

    check: str
    status: Status
    reason: Reason
    summary: str
    started_at: float
    duration: float
    expected: bool
    freshness: tuple[Freshness, ...] = ()
    readings: tuple[Reading, ...] = ()
    observations: Mapping[str, object] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """ok and skipped count as healthy; fail and error do not."""
        return self.status in (Status.OK, Status.SKIPPED)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The stack's knobs that checks judge against (seconds unless named otherwise)."""

    ws_max_age: float = 30.0
    signal_max_age: float = 300.0
    gates_blob_max_age: float = 180.0
    max_clock_skew: float = 5.0
    manifold_ts_fields: tuple[str, ...] = ("ts_ms", "ts", "t", "timestamp", "time")
    manifold_ttl: float = 300.0
    signal_ts_source: str = "auto"  # auto | member | score
    kill_switch_policy: str = "market"  # market | always_off | ignore
    min_eligible: int = 3
    echo_min_repetitions: float = 3
    echo_hazard_max: float = 0.70
    alloc_top_k: int = 3
    alloc_interval: float = 60.0
    allocator_max_age: float = 180.0
    margin_hyst_high: float = 0.30
    pm_max_per_pos_pct: float = 0.10
    risk_alloc_target_pct: float = 0.30
    max_spread_bps: float = 5.0
    weights_scale: str = "auto"  # auto | budget | normalized
    candles_instrument: str = "EUR_USD"
    candles_limit: int = 120
    candles_max_age: float = 180.0
    flat_grace: float = 300.0
    expected_sessions: tuple[str, ...] = ("tokyo", "london", "new_york")


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may touch: read-only sources, the calendar, the clock and the knobs."""

    valkey: ValkeyReader
    http: HttpReader
    calendar: Calendar
    clock: Callable[[], float]
    instruments: tuple[str, ...]
    thresholds: Thresholds
    api_url: str
    allocator_url: str
    stack_metrics_url: str = ""
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
    """One runbook check: its label name, runbook step, cadence, timeout and what it runs."""

    name: str
    runbook: str
    section: str
    description: str
    interval: float
    timeout: float
    market_hours_only: bool
    run: Run
    dependencies: tuple[Dependency, ...] = ()
    enabled: bool = True
