"""The suite itself: no test may pin the day it runs on, and the workers keep each group."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# libfaketime's absolute forms ("@YYYY-MM-DD hh:mm:ss", "YYYY-MM-DD hh:mm:ss" with a leading
# "@" or none) in a FAKETIME setting or a faketime(1) command line.
ABSOLUTE_FAKETIME = re.compile(
    r"""(FAKETIME\W{0,8}|faketime\W{1,4}(-f\W{1,4})?)@?\d{4}-\d{2}-\d{2}""", re.IGNORECASE
)


def absolute_fake_dates(text: str) -> list[int]:
    """The line numbers of `text` that set libfaketime to an absolute date."""
    return [n for n, line in enumerate(text.splitlines(), 1) if ABSOLUTE_FAKETIME.search(line)]


def test_the_guard_sees_the_spellings_that_broke_the_suite() -> None:
    """The pattern catches the kind of literal that failed every day after its date (a
    Saturday noon in late November), and the other ways to write it, but not a moment
    computed from today. The examples are built from today, so this file passes its own
    guard."""
    past = (date.today() - timedelta(days=9)).isoformat()  # a day that has gone by
    caught = (
        f'"FAKETIME": "@{past} 12:00:00",',
        f"FAKETIME='@{past} 12:00:00'",
        f"env FAKETIME=@{past} cmd",
        f'faketime "{past} 12:00:00" quantops-exporter check',
        f"faketime -f '@{past} 12:00:00' quantops-exporter check",
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
        for line in absolute_fake_dates(path.read_text(encoding="utf-8"))
    ]
    assert not found, "absolute fake dates (use tests/moments.py): " + ", ".join(found)


def test_xdist_keeps_each_group_on_one_worker(tmp_path: Path) -> None:
    """`make test` relies on --dist loadgroup keeping an xdist_group on one worker (the week
    replay's one run, the alerting tests' waits). pytest 9.2 silently broke it (pytest-xdist
    #1386: every group spread over the workers, the replay ran twice): a real two-worker run
    of a group whose session fixture notes where it was set up."""
    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        'pytestmark = pytest.mark.xdist_group("together")\n'
        '@pytest.fixture(scope="session")\n'
        "def setup_once():\n"
        '    with open(os.environ["SETUPS"], "a") as f:\n'
        '        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")\n'
        '@pytest.mark.parametrize("n", range(6))\n'
        "def test_grouped(n, setup_once): pass\n"
    )
    (tmp_path / "test_loose.py").write_text(
        'import pytest\n@pytest.mark.parametrize("n", range(12))\ndef test_loose(n): pass\n'
    )
    setups = tmp_path / "setups"
    workers = ("-n", "2", "--dist", "loadgroup")
    alone = ("-c", os.devnull, "--rootdir", str(tmp_path))  # not this project's settings
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *workers,
            *alone,
            str(tmp_path),
        ],
        env=os.environ | {"SETUPS": str(setups)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "18 passed" in done.stdout, done.stdout
    assert len(setups.read_text().split()) == 1, f"set up on {setups.read_text().split()}"
