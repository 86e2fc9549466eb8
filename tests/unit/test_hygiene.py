"""The suite itself: no test may pin the day it runs on."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# libfaketime's absolute forms ("@2026-11-28 12:00:00", "2026-11-28 12:00:00" with a leading
# "@" or none) in a FAKETIME setting or a faketime(1) command line.
ABSOLUTE_FAKETIME = re.compile(
    r"""(FAKETIME\W{0,8}|faketime\W{1,4}(-f\W{1,4})?)@?\d{4}-\d{2}-\d{2}""", re.IGNORECASE
)


def absolute_fake_dates(text: str) -> list[int]:
    """The line numbers of `text` that set libfaketime to an absolute date."""
    return [n for n, line in enumerate(text.splitlines(), 1) if ABSOLUTE_FAKETIME.search(line)]


def test_the_guard_sees_the_spellings_that_broke_the_suite() -> None:
    """The pattern catches the literal that failed every day after 2026-11-28, and the other
    ways to write it, but not a moment computed from today."""
    caught = (
        '"FAKETIME": "@2026-11-28 12:00:00",',
        "FAKETIME='@2027-01-02 12:00:00'",
        "env FAKETIME=@2026-11-28 cmd",
        'faketime "2026-11-28 12:00:00" quantops-exporter check',
        "faketime -f '@2026-11-28 12:00:00' quantops-exporter check",
    )
    computed = (
        "**clock_at(next_saturday_noon()),",
        '"FAKETIME": f"+{offset}",',
        '"FAKETIME": "-1000 x15"',
    )
    assert [bool(absolute_fake_dates(line)) for line in caught] == [True] * len(caught)
    assert [bool(absolute_fake_dates(line)) for line in computed] == [False] * len(computed)


def test_no_test_pins_a_fake_clock_to_a_date() -> None:
    """An absolute libfaketime date in a test passes until that day, then fails every day
    (the stack's data, written on the real clock, lies in its future): derive moments from
    today with tests/moments.py instead."""
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for line in absolute_fake_dates(path.read_text(encoding="utf-8"))
    ]
    assert not found, "absolute fake dates (use tests/moments.py): " + ", ".join(found)
