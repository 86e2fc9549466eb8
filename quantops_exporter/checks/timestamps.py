"""Turn the stack's many timestamp spellings into epoch seconds.

The contract (sep-stack-contract.md §8) lists seconds (allocator /status), milliseconds
(gates blob), nanoseconds (signal keys) and undocumented units (manifold cache), so the unit
is read off the magnitude, and ISO-8601 strings are accepted too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

# Magnitude boundaries: 1e11 s is the year 5138 and 1e11 ms is 1973, so an epoch value below
# 1e11 is seconds, below 1e14 milliseconds, below 1e17 microseconds, and nanoseconds above.
_UNIT_BOUNDS: tuple[tuple[float, float], ...] = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))


class TimestampError(ValueError):
    """A value that cannot be read as a point in time."""


def parse_timestamp(value: object) -> float:
    """Return epoch seconds for an epoch number (s/ms/µs/ns by magnitude) or an ISO-8601 string."""
    if isinstance(value, bool):
        raise TimestampError(f"boolean {value!r} is not a timestamp")
    if isinstance(value, int | float):
        return from_epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return from_epoch(float(text))
        except ValueError:
            pass
        return _from_iso(text)
    raise TimestampError(f"{type(value).__name__} is not a timestamp")


def from_epoch(number: float) -> float:
    """Epoch seconds for an epoch number in s, ms, µs or ns (by magnitude)."""
    if not math.isfinite(number) or number <= 0:
        raise TimestampError(f"epoch value {number!r} is not a positive finite number")
    for bound, per_second in _UNIT_BOUNDS:
        if number < bound:
            return number / per_second
    raise TimestampError(f"epoch value {number!r} is too large for any unit (s/ms/µs/ns)")


def _from_iso(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise TimestampError(f"{text[:40]!r} is neither an epoch number nor ISO-8601") from err
    if moment.tzinfo is None:
        # A zone-less stamp from the stack is UTC (its services log in UTC).
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def find_timestamp(document: Mapping[str, object], fields: Iterable[str]) -> tuple[str, float]:
    """Return the first of `fields` present in `document` and its value in epoch seconds."""
    names = tuple(fields)
    for name in names:
        if name in document and document[name] is not None:
            return name, parse_timestamp(document[name])
    raise TimestampError(f"no timestamp field (looked for {', '.join(names)})")
