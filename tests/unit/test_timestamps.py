"""Timestamp parsing: every unit the contract lists, ISO-8601, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantops_exporter.checks.timestamps import TimestampError, find_timestamp, parse_timestamp
from quantops_exporter.simulator.state import TimeUnit, spell

MOMENT = 1758059154.076  # 2025-09-16T21:45:54.076Z, the contract's gates blob example


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1758059154, 1758059154.0),
        (1758059154076, 1758059154.076),
        (1758059154076000, 1758059154.076),
        (1758059154076000000, 1758059154.076),
        ("1758059154076", 1758059154.076),
        (1726339201.5, 1726339201.5),
        ("2025-09-16T21:45:54.076Z", MOMENT),
        ("2025-09-16T23:45:54.076+02:00", MOMENT),
        ("2025-09-16T21:45:54.076", MOMENT),  # zone-less: UTC
        ("2025-09-16T21:45:54.076000000Z", MOMENT),  # OANDA's nine-digit fractions
    ],
)
def test_units_are_read_off_the_magnitude(value: object, expected: float) -> None:
    """Seconds, ms, µs, ns and ISO-8601 all give the same epoch seconds."""
    assert parse_timestamp(value) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    "value", [True, False, None, 0, -5, float("nan"), float("inf"), 1e25, "yesterday", "", [1], {}]
)
def test_non_timestamps_are_refused(value: object) -> None:
    """Booleans, non-positive, non-finite, absurd and non-date values raise TimestampError."""
    with pytest.raises(TimestampError):
        parse_timestamp(value)


def test_find_timestamp_takes_the_first_present_field() -> None:
    """Fields are tried in order; a null field is skipped."""
    doc = {"ts_ms": None, "ts": 1758059154, "timestamp": "1999-01-01T00:00:00Z"}
    assert find_timestamp(doc, ("ts_ms", "ts", "timestamp")) == ("ts", 1758059154.0)


def test_find_timestamp_names_the_fields_it_looked_for() -> None:
    """The error says which fields were tried, so the operator can configure the right one."""
    with pytest.raises(TimestampError, match="ts_ms, ts"):
        find_timestamp({"other": 1}, ("ts_ms", "ts"))


@given(
    moment=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    unit=st.sampled_from(list(TimeUnit)),
)
def test_every_spelling_round_trips(moment: datetime, unit: TimeUnit) -> None:
    """Any moment this century or next, spelt in any unit, parses back to within a second."""
    seconds = moment.timestamp()
    assert parse_timestamp(spell(seconds, unit)) == pytest.approx(seconds, abs=1.0)


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=40), st.booleans(), st.none()))
def test_parser_raises_only_timestamp_error(value: object) -> None:
    """Whatever arrives off the wire, the parser returns a number or raises TimestampError."""
    try:
        result = parse_timestamp(value)
    except TimestampError:
        return
    assert isinstance(result, float)
