"""The status page: what fails first with the runbook's words, readable colours, true sessions,
the market's countdown and each runbook section's readiness."""

# The runbook's words are compared verbatim: its en dashes are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from quantops_exporter.board import Board
from quantops_exporter.checks.catalog import CHECKS, Anchor
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.humanize import format_countdown, humanize_durations
from quantops_exporter.market import DEFAULT_CLOSURES, AlwaysOpenCalendar, Closure, FxCalendar
from quantops_exporter.status_page import (
    CONTRAST_PAIRS,
    CSS,
    PALETTE,
    RUNBOOK,
    render_status_page,
    runbook_steps,
)
from tests.factories import outcome

RUNBOOK_COPY = Path(__file__).resolve().parents[2] / "docs/runbook/02_Operations_Runbook.md"
NOW = 1_800_000_000.0  # Friday 2027-01-15 08:00 UTC
URL = "https://runbook.example/ops.md"
# Catalog references that name a runbook section but no numbered step of it.
NO_STEP = {"Pre-Open Spin-Up (precondition)"}


def at(*fields: int) -> float:
    """An epoch second from UTC date and time fields."""
    return datetime(*fields, tzinfo=UTC).timestamp()


def page(board: Board, *, now: float = NOW, calendar: object = None) -> str:
    """The page over `board` with the FX calendar unless told otherwise."""
    return render_status_page(
        board.states,
        calendar or FxCalendar(),  # type: ignore[arg-type]
        now=now,
        runbook_url=URL,
    )


def between(text: str, start: str, end: str) -> str:
    """The part of `text` from `start` to the next `end`."""
    part = text[text.index(start) :]
    return part[: part.index(end)]


# -- the runbook's words ---------------------------------------------------------------------


def runbook_file() -> dict[str, list[str]]:
    """Each `##` heading of the repo's runbook copy with its numbered steps' text."""
    sections: dict[str, list[str]] = {}
    steps: list[str] = []
    for line in RUNBOOK_COPY.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            steps = sections.setdefault(line[3:], [])
        elif numbered := re.fullmatch(r"(\d+)\. (.*)", line):
            assert int(numbered[1]) == len(steps) + 1, line
            steps.append(numbered[2])
    return sections


def github_slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_embedded_runbook_is_the_repo_copy_word_for_word() -> None:
    """Every heading and numbered step the page shows is the text of
    docs/runbook/02_Operations_Runbook.md; edit that file and this test says what to update."""
    embedded = {section.heading: list(section.steps) for section in RUNBOOK}
    assert embedded == runbook_file()
    for section in RUNBOOK:
        assert section.anchor.value == github_slug(section.heading)
        assert section.heading.startswith(section.name)
    assert {section.anchor for section in RUNBOOK} == set(Anchor)


def test_every_check_reference_names_runbook_steps() -> None:
    """Each part of each catalog reference resolves to runbook steps (or is a known stepless
    reference), so no failing check shows an empty remedy by a typo."""
    for check in CHECKS:
        for part in (p.strip() for p in check.runbook.split(";")):
            assert runbook_steps(part) or part in NO_STEP, (check.name, part)
    steps = runbook_steps("Pre-Open Spin-Up §1; Troubleshooting step 1; Weekend §2")
    assert [s.label for s in steps] == [
        "Pre-Open Spin-Up §1",
        "Troubleshooting step 1",
        "Weekend §2",
    ]
    assert steps[2].text.startswith("Leave the kill switch ON")
    recovery = runbook_steps("Recovery: Margin or Exposure Beyond 30%")
    assert [s.number for s in recovery] == [1, 2, 3, 4]
    assert runbook_steps("Recovery §9") == () and runbook_steps("Nowhere §1") == ()


# -- colours ----------------------------------------------------------------------------------


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of `#rrggbb`."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two opaque colours."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_of_the_old_error_colour_was_below_aa() -> None:
    """The measurement the issue reports: #9a6700 on the old tint (#cf222e at 0x14 on white)."""
    old_tint = "#fbeeef"
    assert round(contrast("#9a6700", old_tint), 2) == 4.31


@pytest.mark.parametrize(
    ("scheme", "pair"),
    [(scheme, pair) for scheme in PALETTE for pair in CONTRAST_PAIRS],
    ids=lambda value: value if isinstance(value, str) else "-on-".join(value),
)
def test_every_declared_text_colour_meets_wcag_aa(scheme: str, pair: tuple[str, str]) -> None:
    """Each text colour on each background it sits on is at least 4.5:1 (WCAG AA, normal text)."""
    foreground, background = pair
    colours = PALETTE[scheme]
    assert contrast(colours[foreground], colours[background]) >= 4.5


def css_rules() -> list[tuple[str, str]]:
    """(selector, declarations) of every innermost CSS rule."""
    return [(s.strip(), d) for s, d in re.findall(r"([^{}]+)\{([^{}]*)\}", CSS)]


def test_the_css_sets_text_colours_only_from_the_table() -> None:
    """Every `color` in the CSS is a palette variable, every background text can sit on is `bg`
    or `tint`, and every such text colour has a declared pair on both: the table is complete."""
    text_colours, text_backgrounds = set(), set()
    for selector, declarations in css_rules():
        for prop, value in re.findall(r"(?:^|;)\s*([a-z-]+):([^;]+)", declarations):
            if prop == "color":
                assert re.fullmatch(r"var\(--\w+\)", value), (selector, value)
                text_colours.add(value[6:-1])
            elif prop == "background" and not selector.startswith(".t-"):  # timeline boxes
                assert re.fullmatch(r"var\(--\w+\)", value), (selector, value)
                text_backgrounds.add(value[6:-1])
    assert text_backgrounds == {"bg", "tint"}
    assert text_colours <= set(PALETTE["light"]) and "fg" in text_colours
    assert set(product(text_colours, text_backgrounds)) <= set(CONTRAST_PAIRS)
    assert "opacity" not in CSS  # it would lower every ratio above
    assert set(PALETTE["light"]) == set(PALETTE["dark"])


# -- what needs attention ---------------------------------------------------------------------


def failing_board() -> Board:
    """Every check ok but two: a stale manifold (fail) and a gates blob of the wrong type
    (error), each for a few runs."""
    board = Board(CHECKS)
    for check in CHECKS:
        board.record(outcome(check.name, summary="fine", started_at=NOW - 900))
    for minutes_ago in (3, 2, 1):
        board.record(
            outcome(
                "manifold_freshness",
                Status.FAIL,
                Reason.STALE,
                "manifold cache: stale: EUR_USD (840s old) (max 30s)",
                started_at=NOW - 60 * minutes_ago,
            )
        )
    board.record(
        outcome(
            "gates_sanity",
            Status.ERROR,
            Reason.WRONG_TYPE,
            "opt:rolling:gates_blob is not a STRING",
            started_at=NOW - 5,
        )
    )
    return board


def test_what_fails_comes_first_with_the_runbooks_remedy() -> None:
    """The count links to a list above the board: each failing or erroring check with status,
    reason, summary, how long, and the runbook's own text for its steps."""
    body = page(failing_board())
    assert '<a href="#attention">2 of 22 checks failing</a>' in body
    assert "<title>✗ 2 failing · SEP runbook" in body
    assert body.index('id="attention"') < body.index('aria-label="Market sessions"')
    assert body.index('id="attention"') < body.index("<table")
    attention = between(body, 'id="attention"', "</section>")
    assert re.findall(r'<li class="(\w+)" id="attention-(\w+)"', attention) == [
        ("fail", "manifold_freshness"),
        ("error", "gates_sanity"),
    ]
    stale = between(attention, 'id="attention-manifold_freshness"', "</li></ol>")
    assert '<span class="status fail"><span class="word">✗ fail</span>' in stale
    assert "(stale)" in stale and "EUR_USD (14m old) (max 30s)" in stale
    assert "failing for 3m (3 runs) · last run 60s ago · last success 15m ago" in stale
    assert '<a href="#check-manifold_freshness">' in stale
    # Pre-Open Spin-Up §2; Post-Deploy Warmup §2; Troubleshooting step 5, in the runbook's words
    assert re.findall(r'<li><a href="[^"]+#([a-z0-9-]+)">([^<]+)</a>', stale) == [
        ("pre-open-spin-up-510-minutes", "Pre-Open Spin-Up §2"),
        ("post-deploy-warmup", "Post-Deploy Warmup §2"),
        ("troubleshooting-no-positions-while-gates-are-green", "Troubleshooting step 5"),
    ]
    assert (
        "<strong>Freshness</strong> – ensure <code>ws:last:manifold:{instrument}</code> "
        "timestamps are ≤30 seconds old"
    ) in stale
    error = between(attention, 'id="attention-gates_sanity"', "</li></ol>")
    assert "✗ error" in error and "(wrong_type)" in error
    assert "<strong>Gates blob</strong> – inspect" in error
    assert "sep_rolling_gate{eligible=&quot;1&quot;}" in error  # escaped inside <code>
    # the full board is still below, every row
    board = body[body.index('id="board"') :]
    assert all(f'data-check="{check.name}"' in board for check in CHECKS)


def test_error_rows_put_the_reason_under_the_status_not_over_the_summary() -> None:
    """The status word never breaks; the reason is its own element (a block in the table), so
    a long reason wraps inside its cell instead of running into the summary."""
    row = between(page(failing_board()), 'id="check-gates_sanity"', "</tr>")
    assert (
        '<td class="status error" data-label="Status"><span class="word">✗ error</span> '
        '<small class="reason">(wrong_type)</small></td>'
    ) in row
    assert "td.status .reason{display:block}" in CSS and ".word{white-space:nowrap}" in CSS
    assert ".status{font-weight:700;white-space:nowrap}" not in CSS


def test_nothing_failing_says_so_and_links_nowhere() -> None:
    """With every check ok, the list says nothing needs attention; the headline is no link."""
    board = Board(CHECKS)
    for check in CHECKS:
        board.record(outcome(check.name, started_at=NOW - 1))
    body = page(board)
    assert "All 22 checks passing or not expected now" in body
    assert 'href="#attention"' not in body
    assert "Nothing: every check passes or is not expected now." in body


def test_a_stepless_reference_says_so_with_its_link() -> None:
    """valkey_ping is the section's precondition: no step text to show, the link remains."""
    board = Board(CHECKS)
    board.record(outcome("valkey_ping", Status.ERROR, Reason.UNREACHABLE, "connection refused"))
    item = between(page(board), 'id="attention-valkey_ping"', "</li></ol>")
    assert "The runbook has no numbered step for this check." in item
    assert f'href="{URL}#pre-open-spin-up-510-minutes">Pre-Open Spin-Up (precondition)</a>' in item


def test_failing_for_says_at_least_when_the_history_holds_only_failures() -> None:
    """A streak as long as the kept history may be longer: the page says "at least"."""
    board = Board(CHECKS)
    for index in range(25):
        board.record(
            outcome(
                "candles", Status.FAIL, Reason.STALE, "old candles", started_at=NOW - 600 + index
            )
        )
    assert "failing for at least 10m (20 runs)" in page(board)


def test_the_page_loads_nothing_and_runs_no_script() -> None:
    """Offline and fast: no script, no external asset; the only URLs are the runbook's links."""
    body = page(failing_board())
    assert "<script" not in body and "<link" not in body and "@import" not in body
    assert "http://" not in body
    assert set(re.findall(r'https://[^"#]+', body)) == {URL}


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spelt"),
    [
        ("flat for 840s with 3 eligible", "flat for 14m with 3 eligible"),
        ("oldest 30s, max 300s", "oldest 30s, max 5m"),
        ("last cycle 7300.5s ago", "last cycle 2.0h ago"),
        ("took 840ms; id x840s; v1.840s", "took 840ms; id x840s; v1.840s"),
        ("119s and 120s", "119s and 2m"),
    ],
)
def test_durations_are_spelt_for_people(text: str, spelt: str) -> None:
    """Counts of seconds of two minutes or more read as format_duration spells them."""
    assert humanize_durations(text) == spelt


def test_summaries_on_the_page_use_human_durations() -> None:
    """A check's "840s" reads "14m" on the page (the JSON API keeps the check's own words)."""
    row = between(page(failing_board()), 'id="check-manifold_freshness"', "</tr>")
    assert "EUR_USD (14m old) (max 30s)" in row and "840s" not in row


# -- sessions -------------------------------------------------------------------------------


def session_states(body: str) -> dict[str, str]:
    """Each session pill's state."""
    pills = re.findall(r'class="pill (open|closed)" data-session="(\w+)"', body)
    return {name: state for state, name in pills}


@pytest.mark.parametrize(
    ("moment", "open_now"),
    [
        # the demo moment: Thursday 09:18 UTC in winter. Sydney 20:18 AEDT, Tokyo 18:18
        # JST, New York 04:18 EST are closed; London 09:18 GMT is open.
        (at(2026, 11, 26, 9, 18), {"london"}),
        # the same in summer: Sydney 19:18 AEST, Tokyo 18:18, London 10:18 BST, NY 05:18 EDT
        (at(2026, 7, 16, 9, 18), {"london"}),
        # 00:30 UTC on a Wednesday in January: Sydney 11:30 AEDT and Tokyo 09:30 JST
        (at(2026, 1, 14, 0, 30), {"sydney", "tokyo"}),
        # 14:00 UTC: London 14:00 and New York 09:00 overlap
        (at(2026, 1, 14, 14, 0), {"london", "new_york"}),
        # Saturday: everything is closed
        (at(2026, 1, 17, 12, 0), set()),
    ],
)
def test_the_session_strip_is_true_to_local_hours_whatever_the_calendar(
    moment: float, open_now: set[str]
) -> None:
    """The demo runs QUANTOPS_MARKET_HOURS=always, whose calendar counts every session as open
    (so freshness checks run at any hour); the strip must still tell Tokyo's evening from its
    morning, and says the checks' calendar differs."""
    board = Board(CHECKS)
    for calendar in (FxCalendar(), AlwaysOpenCalendar()):
        body = page(board, now=moment, calendar=calendar)
        states = session_states(body)
        assert {name for name, state in states.items() if state == "open"} == open_now
        assert set(states) == {"sydney", "tokyo", "london", "new_york"}
        note = "the checks treat the market and every session as open"
        assert (note in body.lower()) == isinstance(calendar, AlwaysOpenCalendar)
    body = page(board, now=at(2026, 11, 26, 9, 18))
    assert 'Tokyo: closed <span class="muted">Thu 18:18 local, 09:00–18:00</span>' in body


# -- the market's countdown, closures and each section's readiness ----------------------------


def heading(body: str) -> str:
    """The market section's heading text."""
    return between(body, '<h2 id="market">Market: ', "</h2>")[len('<h2 id="market">Market: ') :]


def ny(text: str) -> float:
    """Epoch seconds of a New York wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("America/New_York")).timestamp()


@pytest.mark.parametrize(
    ("seconds", "spelt"),
    [
        (0, "under 1 min"),
        (59, "under 1 min"),
        (60, "1 min"),
        (45 * 60 + 59, "45 min"),
        (3600, "1 h"),
        (72 * 60 + 30, "1 h 12 min"),
        (2 * 86_400 + 4 * 3600 + 59 * 60, "2 d 4 h"),
        (3 * 86_400, "3 d"),
        (-5, "under 1 min"),
    ],
)
def test_countdowns_round_down_in_whole_units(seconds: float, spelt: str) -> None:
    """A countdown never says an event is further off than it is."""
    assert format_countdown(seconds) == spelt


@pytest.mark.parametrize(
    ("moment", "said"),
    [
        # the example: Sunday 15:48 New York, 1 h 12 min before the weekly open
        (ny("2027-01-17 15:48"), "closed (weekend) · opens in 1 h 12 min (Sun 17:00 New York)"),
        # NOW, Friday 03:00 New York: open until 17:00
        (NOW, "open · closes in 14 h (Fri 17:00 New York)"),
        # summer time: Friday 16:30 EDT
        (ny("2026-07-10 16:30"), "open · closes in 30 min (Fri 17:00 New York)"),
        # Christmas Eve 2026 after the holiday close: no open until Sunday
        (
            ny("2026-12-24 18:00"),
            "closed (holiday 12-25) · opens in 2 d 23 h (Sun 17:00 New York)",
        ),
    ],
)
def test_the_market_heading_counts_down_to_the_next_open_or_close(moment: float, said: str) -> None:
    """The heading says open or closed and how long until that changes, at New York's time."""
    calendar = FxCalendar(Closure.parse(text) for text in DEFAULT_CLOSURES)
    assert heading(page(Board(CHECKS), now=moment, calendar=calendar)) == said


def test_an_open_more_than_six_days_away_names_its_date() -> None:
    """A long holiday: the weekday alone would be ambiguous, so the date is shown."""
    calendar = FxCalendar([Closure.parse("2027-01-18..2027-01-29")])
    said = heading(page(Board(CHECKS), now=ny("2027-01-16 12:00"), calendar=calendar))
    assert said == "closed (weekend) · opens in 15 d 5 h (Sun 31 Jan 17:00 New York)"


def test_the_closures_are_listed_or_said_to_be_none() -> None:
    """QUANTOPS_MARKET_CLOSURES as configured; under `always` the FX closures do not apply."""
    board = Board(CHECKS)
    holidays = FxCalendar(Closure.parse(text) for text in DEFAULT_CLOSURES)
    assert "Holiday closures (QUANTOPS_MARKET_CLOSURES): <code>12-25, 01-01</code>" in page(
        board, calendar=holidays
    )
    assert "Holiday closures (QUANTOPS_MARKET_CLOSURES): none." in page(board)
    always = page(board, calendar=AlwaysOpenCalendar())
    assert "Holiday closures" not in always
    assert heading(always) == "open (QUANTOPS_MARKET_HOURS=always)"


def readiness(body: str) -> dict[str, str]:
    """Each runbook section's readiness line as `state: its text`, by section."""
    part = between(body, '<ul class="readiness">', "</ul>")
    lines = re.findall(r'<li data-section="([\w-]+)" data-ready="(\w+)">(.*?)</li>', part)
    return {section: f"{state}: {re.sub(r'<[^>]+>', '', text)}" for section, state, text in lines}


def test_each_section_says_whether_it_is_ready_and_what_is_not() -> None:
    """Every runbook section has a line; a failing check turns each section naming it to not
    ready, naming it, with a link to the section's table."""
    body = page(failing_board())
    lines = readiness(body)
    assert list(lines) == ["pre-open", "daily", "post-deploy", "troubleshooting", "recovery"]
    assert lines["pre-open"] == (
        "fail: ✗ not ready Pre-Open Spin-Up: failing: manifold_freshness, gates_sanity"
    )
    assert (
        lines["post-deploy"] == "fail: ✗ not ready Post-Deploy Warmup: failing: manifold_freshness"
    )
    assert (
        lines["daily"]
        == "ok: ✓ ready Daily Ops Snapshot: all 6 checks pass or are not expected now"
    )
    assert lines["recovery"].startswith("ok: ✓ ready")
    assert '<a href="#section-pre-open">Pre-Open Spin-Up</a>' in body
    assert '<table id="section-pre-open"' in body
    assert body.index('class="readiness"') < body.index('id="board"')


def test_a_weekend_board_is_not_verified_rather_than_ready() -> None:
    """Saturday: the market-hours checks were skipped, so the sections naming them (each has
    one) are not verified, not ready: a gate never passes on nothing."""
    board = Board(CHECKS)
    for check in CHECKS:
        if check.market_hours_only:
            board.record(outcome(check.name, Status.SKIPPED, Reason.MARKET_CLOSED, expected=False))
        else:
            board.record(outcome(check.name))
    lines = readiness(page(board, now=ny("2027-01-16 12:00")))
    assert lines["pre-open"] == (
        "skipped: – not verified Pre-Open Spin-Up: not verified: manifold_freshness, "
        "signal_freshness, gates_blob_freshness, gates_eligible, no_positions_diagnosis "
        "(skipped while the market was closed, or not run yet)"
    )
    assert {line.split(":")[0] for line in lines.values()} == {"skipped"}
