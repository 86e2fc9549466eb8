"""The status page tells the same truth as the alerts (issue 23): a check not expected now reads
"not expected" whether it skipped or ran, and is neither counted as failing nor "not ready";
on a holiday the market, the sessions and the closure text name the holiday. Moments are
derived from today (tests/moments.py)."""

# The page is typeset: its en dashes are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from quantops_exporter.board import Board, section_readiness
from quantops_exporter.checks.catalog import CHECKS, Section
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.market import closure_summary
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.status_page import render_status_page
from tests.factories import outcome
from tests.moments import (
    default_calendar,
    next_dec_25_noon,
    next_jan_1_noon,
    next_saturday_noon,
    next_sunday_open,
)

WARMING = "warming up after the open (not expected for 4m): "


def page(board: Board, now: datetime) -> str:
    """The page over `board` at `now`, on the daemon's default calendar."""
    return render_status_page(board.states, default_calendar(), now=now.timestamp())


def rows(body: str) -> dict[str, str]:
    """Each board row's shown status."""
    return dict(
        re.findall(
            r'<tr class="[a-z-]+" id="check-\w+" data-check="(\w+)" '
            r'data-status="([a-z-]+)"',
            body,
        )
    )


def row(body: str, check: str) -> str:
    part = body[body.index(f'id="check-{check}"') :]
    return part[: part.index("</tr>")]


def readiness(body: str) -> dict[str, tuple[str, str]]:
    """Each section's readiness state and text."""
    part = body[body.index('<ul class="readiness">') :]
    part = part[: part.index("</ul>")]
    return {
        section: (state, re.sub(r"<[^>]+>", "", text))
        for section, state, text in re.findall(
            r'<li data-section="([\w-]+)" data-ready="([\w-]+)">(.*?)</li>', part
        )
    }


def warm_up_board(opening: datetime, *, expected_failure: bool = False) -> Board:
    """The board a minute after an open, as the daemon records it: signal_freshness and
    gates_eligible ran and failed while not expected (the writers are resuming), sessions_open
    skipped itself, the rest passed; optionally a kill switch failing while expected."""
    board = Board(CHECKS)
    at = opening.timestamp() + 60
    for check in CHECKS:
        board.record(outcome(check.name, summary="fine", started_at=at, expected=False))
    board.record(
        outcome(
            "signal_freshness",
            Status.FAIL,
            Reason.STALE,
            WARMING + "signal index: stale: EUR_USD (180000s old)",
            started_at=at,
            expected=False,
        )
    )
    board.record(
        outcome(
            "gates_eligible",
            Status.FAIL,
            Reason.THRESHOLD,
            WARMING + "0 eligible (at least 3)",
            started_at=at,
            expected=False,
        )
    )
    board.record(outcome("sessions_open", Status.SKIPPED, Reason.SESSION_CLOSED, expected=False))
    if expected_failure:
        board.record(outcome("kill_switch", Status.FAIL, Reason.MISMATCH, "API off, Valkey on"))
    return board


OPENS = {
    "the next Sunday open": next_sunday_open,
    "the Sunday open after": lambda: next_sunday_open(after=next_sunday_open()),
}


@pytest.mark.parametrize("opening", OPENS.values(), ids=OPENS.keys())
def test_the_warm_up_counts_no_not_expected_check_as_failing(opening: object) -> None:
    """At 17:01 after the open the two checks still resuming read "not expected" (with what
    they saw), are not counted, not listed as needing attention and make no section "not
    ready": the issue saw "2 of 22 checks failing" and three sections not ready."""
    opened: datetime = opening()  # type: ignore[operator]
    body = page(warm_up_board(opened), opened + timedelta(minutes=1))
    assert "All 22 checks passing or not expected now" in body
    assert 'href="#attention"' not in body and "<title>SEP runbook" in body
    assert "Nothing: every check passes or is not expected now." in body
    shown = rows(body)
    assert {c for c, s in shown.items() if s != "ok"} == {
        "signal_freshness",
        "gates_eligible",
        "sessions_open",
    }
    assert set(shown.values()) == {"ok", "not-expected"}
    stale = row(body, "signal_freshness")
    assert "– not expected</span>" in stale and "(fail: stale)" in stale
    assert "✗" not in stale and 'class="t-fail"' not in stale
    lines = readiness(body)
    assert all(state != "fail" for state, _text in lines.values()), lines
    assert lines["pre-open"] == (
        "not-expected",
        "– not expected yet Pre-Open Spin-Up: not expected yet: signal_freshness, "
        "gates_eligible (not green while the stack warms up after the open)",
    )


def test_a_check_failing_while_expected_still_counts_beside_them() -> None:
    """The same warm-up with the kill switch failing while expected: one of 22 failing, that one
    in the list and its sections not ready, the resuming ones still only not expected."""
    opened = next_sunday_open()
    body = page(warm_up_board(opened, expected_failure=True), opened + timedelta(minutes=1))
    assert '<a href="#attention">1 of 22 checks failing</a>' in body
    assert re.findall(r'<li class="\w+" id="attention-(\w+)"', body) == ["kill_switch"]
    state, text = readiness(body)["pre-open"]
    assert state == "fail"
    assert text.endswith(
        "failing: kill_switch; not expected yet: signal_freshness, gates_eligible (not green "
        "while the stack warms up after the open)"
    )


def test_runbook_section_ok_still_reads_0_until_the_warm_up_is_green() -> None:
    """The page no longer calls the warm-up "not ready", but the metric the PreOpenNotReady
    alert reads is unchanged: 0 while a check is not green, 1 once every one passes."""
    opened = next_sunday_open()
    board = warm_up_board(opened)
    registry, _ = build_registry(board, DependencyHealth(), CHECKS)

    def pre_open() -> float | None:
        return registry.get_sample_value("runbook_section_ok", {"section": "pre-open"})

    assert pre_open() == 0
    readiness = section_readiness(board.states.values(), Section.PRE_OPEN)
    assert readiness.not_expected == ("signal_freshness", "gates_eligible")
    assert readiness.failing == () and not readiness.ok
    for name in ("signal_freshness", "gates_eligible"):
        board.record(outcome(name, started_at=opened.timestamp() + 240, expected=False))
    assert pre_open() == 1


def test_not_expected_reads_the_same_whether_the_check_skipped_or_ran() -> None:
    """Saturday's skip and the warm-up's failed run of the same check read alike: the same
    mark, word and class, each with its own status and reason beside it."""
    saturday, opened = next_saturday_noon(), next_sunday_open()
    closed = Board(CHECKS)
    closed.record(
        outcome("signal_freshness", Status.SKIPPED, Reason.MARKET_CLOSED, "closed", expected=False)
    )
    skipped = row(page(closed, saturday), "signal_freshness")
    ran = row(page(warm_up_board(opened), opened + timedelta(minutes=1)), "signal_freshness")

    def status_cell(text: str) -> str:
        return re.sub(r'<small class="reason">\(.*?\)</small>', "", text.split("</td>")[1])

    assert status_cell(skipped) == status_cell(ran)
    assert "(skipped: market_closed)" in skipped and "(fail: stale)" in ran


def holidays() -> dict[str, datetime]:
    """Noon on the next Dec 25, the next Jan 1, and Dec 25 over the next seven years (every
    weekday, the weekend included)."""
    dec_25 = next_dec_25_noon()
    moments = {"next dec 25 noon": dec_25, "next jan 1 noon": next_jan_1_noon()}
    for years in range(1, 7):
        later = dec_25.replace(year=dec_25.year + years)
        moments[f"dec 25 noon in {years} years, a {later:%A}"] = later
    return moments


@pytest.mark.parametrize("moment", holidays().values(), ids=holidays().keys())
def test_a_holiday_names_itself_and_no_session_is_open(moment: datetime) -> None:
    """On a holiday every market-hours summary the daemon writes names the holiday (the issue
    saw the weekend's hours hard-coded), the heading says closed for it, every session pill
    reads closed (the issue saw "New York: open" beside "Market: closed") and the Weekend
    section says what is in force."""
    holiday = "holiday 12-25" if moment.month == 12 else "holiday 01-01"
    calendar = default_calendar()
    said = closure_summary(calendar, moment.timestamp())
    assert said.startswith(f"FX market closed for the {holiday} (") and "weekend" not in said
    body = page(Board(CHECKS), moment)
    heading = re.search(r'<h2 id="market">Market: (.*?)</h2>', body)
    assert heading and heading[1].startswith(f"closed ({holiday}) · opens in ")
    pills = re.findall(r'class="pill (\w+)" data-session="(\w+)"', body)
    assert len(pills) == 4 and {state for state, _ in pills} == {"closed"}
    assert f"In force now: {said}" in body.replace("&#x27;", "'")
