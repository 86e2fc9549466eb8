"""What a check concludes: status, reason, the numbers and timestamps it saw, and the verdict.

Evaluators build verdicts with `ok(...)`, `fail(reason, ...)` and `error(reason, ...)`; the
closed enums here are the only label values a verdict can put on a metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypedDict, Unpack

from quantops_exporter.sources import errors
from quantops_exporter.sources.health import Dependency


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
    VALUE_TOO_LARGE = "value_too_large"
    REFUSED = "refused"
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
    RECOVERY_MARGIN_TO_RELEASE = "recovery_margin_to_release"
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
class Unreadable:
    """Something a run could not read, and why: an endpoint of an HTTP dependency (its path) or a
    Valkey key. Items come from the configuration and the code's paths and key templates, never
    from the data read, so they are label values (`runbook_check_unreadable`)."""

    dependency: Dependency
    item: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a pure evaluator concluded from what a check read."""

    status: Status
    reason: Reason
    summary: str
    freshness: tuple[Freshness, ...] = ()
    readings: tuple[Reading, ...] = ()
    observations: Mapping[str, object] = field(default_factory=dict)
    unreadable: tuple[Unreadable, ...] = ()


class Evidence(TypedDict, total=False):
    """What a verdict may carry besides its summary."""

    freshness: tuple[Freshness, ...]
    readings: tuple[Reading, ...]
    observations: Mapping[str, object]
    unreadable: tuple[Unreadable, ...]


def ok(summary: str, **evidence: Unpack[Evidence]) -> Verdict:
    """The stack is healthy in what this check looks at."""
    return Verdict(Status.OK, Reason.NONE, summary, **evidence)


def fail(reason: Reason, summary: str, **evidence: Unpack[Evidence]) -> Verdict:
    """The stack is unhealthy, for `reason`."""
    return Verdict(Status.FAIL, reason, summary, **evidence)


def error(reason: Reason, summary: str, **evidence: Unpack[Evidence]) -> Verdict:
    """We could not tell, for `reason` (the data was unreadable, skewed, ...)."""
    return Verdict(Status.ERROR, reason, summary, **evidence)


_REASONS: tuple[tuple[type[errors.SourceError], Reason], ...] = (
    (errors.Unreachable, Reason.UNREACHABLE),
    (errors.HttpStatusError, Reason.HTTP_ERROR),
    (errors.ValueTooLarge, Reason.VALUE_TOO_LARGE),
    (errors.TooLarge, Reason.TOO_LARGE),
    (errors.BadPayload, Reason.BAD_PAYLOAD),
    (errors.WrongType, Reason.WRONG_TYPE),
    (errors.Forbidden, Reason.FORBIDDEN),
    (errors.Refused, Reason.REFUSED),
)


def reason_for(err: errors.SourceError) -> Reason:
    """The closed-enum reason for a source error (the most specific class wins)."""
    for kind, reason in _REASONS:
        if isinstance(err, kind):
            return reason
    return Reason.INTERNAL_ERROR


def unreadable_of(err: errors.SourceError, reason: Reason | None = None) -> tuple[Unreadable, ...]:
    """What a located source error could not read (nothing when it does not say)."""
    if not err.dependency:
        return ()
    return (Unreadable(Dependency(err.dependency), err.item, reason or reason_for(err)),)
