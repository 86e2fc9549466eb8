"""The status page: the runbook as a board, server-rendered, offline, self-refreshing.

What needs attention comes first: every failing or erroring check with its status, reason,
summary, how long it has been failing and the runbook's own words for the steps it belongs to
(embedded below from the repo's copy of the runbook, so the page works offline). Then the market
(status_market.py): open or closed and why, a countdown to its next open or close, the sessions,
the holiday closures; and each runbook section's readiness, judged as `runbook_section_ok` and
`check --section` judge it. A run that was not expected (the market closed, the warm-up after an
open) reads "not expected", whether it skipped or ran and failed: no alert fires for it, so it is
neither counted as failing nor painted red. The full board follows, one semantic table per
runbook section with a caption and column headers. Status is written out (and marked with a
tick, cross or dash) so colour is never the only signal, and every text colour is declared with
its background in `CONTRAST_PAIRS` (tested to WCAG AA, 4.5:1).
"""

# The runbook's words are embedded verbatim and the page is typeset: en dashes, ≈, × are meant.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from quantops_exporter import __version__
from quantops_exporter.board import CheckState, SectionReadiness, readiness_by_section
from quantops_exporter.checks.base import Outcome
from quantops_exporter.checks.catalog import DEFAULT_RUNBOOK_URL, Anchor, Section
from quantops_exporter.checks.verdict import MARKS, Status
from quantops_exporter.humanize import format_duration, humanize_durations
from quantops_exporter.market import Calendar
from quantops_exporter.status_market import market_section, weekend_section

REFRESH_SECONDS = 10
NEEDS_ATTENTION = (Status.FAIL, Status.ERROR)
# How a run reads when its check was not expected then (the market closed, the warm-up after
# an open, no intended session), whether it skipped or ran and failed: no alert fires for it,
# so the page neither counts it as failing nor paints it red.
NOT_EXPECTED = "not-expected"

# The page's colours by scheme. `tint` is the background of failing rows and attention items.
PALETTE: dict[str, dict[str, str]] = {
    "light": {
        "bg": "#ffffff",
        "fg": "#1f2328",
        "muted": "#59636e",
        "link": "#0550ae",
        "ok": "#1a7f37",
        "fail": "#c4212c",
        "error": "#7d4e00",
        "skipped": "#59636e",
        "tint": "#fff1f0",
    },
    "dark": {
        "bg": "#0d1117",
        "fg": "#e6edf3",
        "muted": "#9198a1",
        "link": "#58a6ff",
        "ok": "#3fb950",
        "fail": "#ff7b72",
        "error": "#d29922",
        "skipped": "#9198a1",
        "tint": "#2a1619",
    },
}

# Every text colour the CSS sets, on every background it can sit on (foreground, background).
# tests/unit/test_status_page.py checks each is at least 4.5:1 in both schemes, and that the CSS
# sets no text colour outside this table.
CONTRAST_PAIRS: tuple[tuple[str, str], ...] = (
    ("fg", "bg"),  # body text, summaries, code
    ("muted", "bg"),  # ages, local session times, the footer
    ("link", "bg"),  # links
    ("ok", "bg"),  # ✓ ok, open sessions
    ("fail", "bg"),  # ✗ fail in an untinted place (the headline)
    ("error", "bg"),
    ("skipped", "bg"),  # – skipped, … pending, closed sessions
    ("fg", "tint"),  # text of failing rows and attention items
    ("muted", "tint"),
    ("link", "tint"),
    ("ok", "tint"),  # not used there today; declared so any status may sit on any row
    ("fail", "tint"),  # ✗ fail on its tinted row
    ("error", "tint"),  # ✗ error on its tinted row (issue 13: was 4.31:1)
    ("skipped", "tint"),
)


def _variables(colours: Mapping[str, str]) -> str:
    return ";".join(f"--{name}:{value}" for name, value in colours.items())


CSS = (
    f":root{{{_variables(PALETTE['light'])}}}"
    f"@media (prefers-color-scheme:dark){{:root{{{_variables(PALETTE['dark'])}}}}}"
    """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem;
background:var(--bg);color:var(--fg)}
a{color:var(--link)}code{font-size:.92em;overflow-wrap:anywhere}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
h3{font-size:1rem;margin:0}
nav{display:flex;flex-wrap:wrap;gap:.2rem 1rem}
.headline a{color:var(--fail)}
.status{font-weight:700}.word{white-space:nowrap}
.status.ok{color:var(--ok)}.status.fail{color:var(--fail)}.status.error{color:var(--error)}
.status.skipped,.status.pending,.status.not-expected{color:var(--skipped)}
.reason{font-weight:400}
.muted{color:var(--muted)}
.attention{list-style:none;padding:0;margin:0}
.attention>li{background:var(--tint);border-left:5px solid var(--fail);border-radius:4px;
padding:.6rem .9rem;margin:.6rem 0}
.attention>li.error{border-left-color:var(--error)}
.attention h3{display:flex;flex-wrap:wrap;gap:.1rem .6rem;align-items:baseline}
.attention p{margin:.25rem 0;overflow-wrap:anywhere}
.remedy ol{margin:.3rem 0 0;padding-left:1.6rem}.remedy li{margin:.15rem 0}
.remedy li.current{font-weight:600}
.all-clear{margin:.4rem 0}
.readiness{list-style:none;padding:0;margin:.4rem 0}.readiness li{margin:.3rem 0}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th:nth-child(1){width:17%}th:nth-child(2){width:12%}th:nth-child(3){width:32%}
th:nth-child(4),th:nth-child(5){width:8%}th:nth-child(6){width:9%}th:nth-child(7){width:14%}
td{overflow-wrap:anywhere}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border-bottom:1px solid #8884;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{font-size:.85rem}td.status .reason{display:block}
tr.fail,tr.error{background:var(--tint)}
.strip{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}
.pill{border:1px solid #8886;border-radius:1rem;padding:.15rem .7rem}
.pill.open{border-color:var(--ok);color:var(--ok)}.pill.closed{color:var(--skipped)}
.timeline{display:flex;flex-wrap:wrap;gap:2px}
.timeline span{width:8px;height:14px;display:inline-block}
.t-ok{background:var(--ok)}.t-fail{background:var(--fail)}.t-error{background:var(--error)}
.t-not-expected{background:var(--skipped)}
@media (max-width:700px){thead{display:none}td{display:block;border:0;padding:.1rem .4rem}
tr{display:block;border-bottom:1px solid #8886;padding:.4rem 0}
td[data-label]::before{content:attr(data-label) ": ";font-weight:600}
td.status .reason{display:inline}}
"""
)


# The runbook's steps, verbatim (Markdown) from docs/runbook/02_Operations_Runbook.md, the copy
# this repo ships: embedded so the page shows the remedy offline and the wheel needs no data
# file. tests/unit/test_status_page.py proves every heading and step matches that file.
@dataclass(frozen=True, slots=True)
class RunbookSection:
    """One `##` section of the runbook: its heading, its name in check references (`Weekend
    §2`), how references number its steps (`§` or `step `), its anchor, its numbered steps."""

    heading: str
    name: str
    numbering: str
    anchor: Anchor
    steps: tuple[str, ...]


RUNBOOK: tuple[RunbookSection, ...] = (
    RunbookSection(
        "Pre-Open Spin-Up (≈5–10 minutes)",
        "Pre-Open Spin-Up",
        "§",
        Anchor.PRE_OPEN,
        (
            "**Kill switch & live flags** – confirm `/api/kill-switch → {kill_switch:false}` and "
            "`LIVE_TRADING_ENABLED=1`. Use `KILL_SWITCH_FORCE_ENV=1` only if the environment "
            "must override Valkey on boot.",
            "**Freshness** – ensure `ws:last:manifold:{instrument}` timestamps are ≤30 seconds "
            "old and `sep:signal_index:{instrument}` shows inserts within the last 5 minutes. "
            "The deploy warmup orchestrator primes both during boot.",
            "**Gates blob** – inspect `opt:rolling:gates_blob.ts` and `/metrics "
            'sep_rolling_gate{eligible="1"}`; expect at least three eligibles for the active '
            "sessions. Confirm repetition counts and hazards look sane "
            "(`gates_blob.repetition` and `gates_blob.hazard`).",
            "**Sessions & margin** – confirm the intended sessions are open (Tokyo/London/New "
            "York) and margin utilisation `< 0.30` via `/api/oanda/account`.",
            "**Allocator & portfolio** – allocator-lite publishes ≥`ALLOC_TOP_K` weights each "
            "minute (`/metrics sep_allocator_selected`). PortfolioManager ramps toward caps "
            "without exceeding `min(budget/K, PM_MAX_PER_POS_PCT × budget)`.",
            "**If still flat after 5 minutes** – inspect OANDA connectivity, spread/margin "
            "guards, gates freshness, and allocator-lite logs before adjusting parameters.",
        ),
    ),
    RunbookSection(
        "Daily Ops Snapshot (≈30 seconds)",
        "Daily Ops Snapshot",
        "§",
        Anchor.DAILY,
        (
            "`curl :8100/status | jq .interval` → expect `60` (allocator-lite cadence).",
            "`/metrics` – review `sep_rolling_gate{}` rows to confirm eligibles and buffers per "
            "instrument.",
            "Count `sep_allocator_selected{}` – ensures the published weights match `ALLOC_TOP_K`.",
            "`opt:rolling:gates_blob.ts` age within `GATES_BLOB_MAX_AGE_SEC`.",
            "`sep_span_integrity_ok` metric equals `1`.",
            "`/api/risk/allocation-status` – total allocation ≤0.30 and weights present only for "
            "the published Top-K.",
        ),
    ),
    RunbookSection(
        "Post-Deploy Warmup",
        "Post-Deploy Warmup",
        "§",
        Anchor.POST_DEPLOY,
        (
            "Run `deploy.sh` – builds images, starts services, and executes warmup orchestrator "
            "(`backfill`, `prime`, `hydrate`).",
            "Verify candles via `/api/candles?instrument=EUR_USD&granularity=M1&limit=120` and "
            "manifolds via `redis-cli GET ws:last:manifold:EUR_USD`.",
            "Confirm allocator-lite (port 8100) and rolling evaluator logs are healthy before "
            "disengaging the kill switch. Env knobs: `ECHO_MIN_REPETITIONS`, `ECHO_HAZARD_MAX`.",
        ),
    ),
    RunbookSection(
        "Troubleshooting: No Positions While Gates Are Green",
        "Troubleshooting",
        "step ",
        Anchor.TROUBLESHOOTING,
        (
            "Kill switch off? (`/api/kill-switch → false`).",
            'Trading mode live? (`/api/trading/mode → mode:"live", oanda_connected:true`).',
            "Budget populated? (`redis-cli HGETALL risk:alloc_budget`).",
            "Allocation weights exist? (`redis-cli GET risk:allocation_weights`).",
            "Freshness within limits? (`ws:last:manifold:*`, `sep:signal_index:*`).",
            "Gates blob stale? Allocator-lite holds previous weights until refreshed; **do "
            "not** force entries.",
            "Spread / margin gating blocking adds? Inspect `/api/oanda/account` and allocator "
            "logs for `MAX_SPREAD_BPS` or margin warnings.",
            "If all above pass, trigger manual reconcile: `POST /api/trade/reconcile`. "
            "PortfolioManager also reconciles automatically every 30 seconds.",
        ),
    ),
    RunbookSection(
        "Recovery: Margin or Exposure Beyond 30%",
        "Recovery",
        "§",
        Anchor.RECOVERY,
        (
            "Engage kill switch (blocks new adds, allows reductions).",
            "Run `bin/drain_overcap_only.sh --dry-run` to inspect proposed closures.",
            "Close positions with a ≤3% buffer until utilisation `< 0.30`.",
            "Review `RISK_ALLOC_TARGET_PCT`, Top-K selection, and live spreads before "
            "re-enabling entries.",
        ),
    ),
    RunbookSection(
        "Weekend / Market Close",
        "Weekend",
        "§",
        Anchor.WEEKEND,
        (
            "Expect WS ages to stretch; allocator-lite keeps the previous weights while sessions "
            "are closed.",
            "Leave the kill switch ON until the first session opens and freshness checks pass.",
            "Resume with the Pre-Open Spin-Up checklist.",
        ),
    ),
)
_BY_NAME = {section.name: section for section in RUNBOOK}
_BY_HEADING = {section.heading: section for section in RUNBOOK}
_NUMBERED = re.compile(r"(?P<name>.+?) (?:§|step )(?P<number>[1-9][0-9]*)")


@dataclass(frozen=True, slots=True)
class RunbookStep:
    """One numbered step of the runbook, as a check's reference names it."""

    section: RunbookSection
    number: int

    @property
    def label(self) -> str:
        """How the catalog refers to it: `Pre-Open Spin-Up §2`, `Troubleshooting step 5`."""
        return f"{self.section.name} {self.section.numbering}{self.number}"

    @property
    def text(self) -> str:
        """The step's words in the runbook (Markdown)."""
        return self.section.steps[self.number - 1]


def runbook_steps(reference: str) -> tuple[RunbookStep, ...]:
    """The runbook steps a check's reference names, in its order: `Name §n` or `Name step n`
    is one step; a section's full heading is every step of it; anything else (`Pre-Open
    Spin-Up (precondition)`) names no step."""
    steps: list[RunbookStep] = []
    for part in (p.strip() for p in reference.split(";")):
        numbered = _NUMBERED.fullmatch(part)
        if numbered and numbered["name"] in _BY_NAME:
            section = _BY_NAME[numbered["name"]]
            if int(numbered["number"]) <= len(section.steps):
                steps.append(RunbookStep(section, int(numbered["number"])))
        elif part in _BY_HEADING:
            section = _BY_HEADING[part]
            steps.extend(RunbookStep(section, n) for n in range(1, len(section.steps) + 1))
    return tuple(steps)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _markdown(text: str) -> str:
    """The runbook's inline Markdown (`code`, **bold**) as escaped HTML."""
    parts = text.split("`")
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<code>{_esc(part)}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", _esc(part)))
    return "".join(out)


def _shown(outcome: Outcome) -> str:
    """The status a run reads as: its own, or NOT_EXPECTED when it did not pass while its
    check was not expected."""
    if outcome.status is Status.OK or outcome.expected:
        return outcome.status.value
    return NOT_EXPECTED


def _run_word(outcome: Outcome) -> str:
    """`fail`, or `fail, not expected` for a run the alerts ignore."""
    expected = _shown(outcome) != NOT_EXPECTED
    return outcome.status.value + ("" if expected else ", not expected")


def _timeline(history: Iterable[Outcome]) -> str:
    boxes = "".join(
        f'<span class="t-{_shown(o)}" title="{_esc(_run_word(o))}: {_esc(o.reason.value)}"></span>'
        for o in history
    )
    statuses = "; ".join(_run_word(o) for o in history) or "no runs yet"
    return (
        f'<div class="timeline" role="img" aria-label="recent runs: {_esc(statuses)}">{boxes}</div>'
    )


def _ago(now: float, moment: float | None) -> str:
    return "never" if moment is None else f"{format_duration(now - moment)} ago"


def _status(state: CheckState) -> tuple[str, str, str, str]:
    """The status as shown (a CSS class), its words, its mark and the reason ("" when there
    is none); a run that was not expected gives its own status with the reason."""
    latest = state.latest
    if latest is None:
        return "pending", "pending", "…", ""
    reason = latest.reason.value if latest.reason.value != "none" else ""
    shown = _shown(latest)
    if shown == NOT_EXPECTED:
        why = f"{latest.status.value}: {reason}" if reason else latest.status.value
        return shown, "not expected", MARKS[Status.SKIPPED], why
    return shown, shown, MARKS[latest.status], reason


def _summary(state: CheckState) -> str:
    return humanize_durations(state.latest.summary) if state.latest else "not run yet"


def _check_row(state: CheckState, now: float, runbook_url: str) -> str:
    check, latest = state.check, state.latest
    status, word, mark, reason = _status(state)
    ran = _ago(now, latest.started_at if latest else None)
    success = _ago(now, state.last_success_at)
    disabled = "" if check.enabled else ' <span class="muted">(disabled)</span>'
    why = f' <small class="reason">({_esc(reason)})</small>' if reason else ""
    return (
        f'<tr class="{status}" id="check-{_esc(check.name)}" data-check="{_esc(check.name)}" '
        f'data-status="{status}">'
        f'<td data-label="Check"><code>{_esc(check.name)}</code>{disabled}</td>'
        f'<td class="status {status}" data-label="Status"><span class="word">{mark} '
        f"{_esc(word)}</span>"
        f"{why}</td>"
        f'<td class="summary" data-label="Summary">{_esc(_summary(state))}</td>'
        f'<td data-label="Last run">{_esc(ran)}</td>'
        f'<td data-label="Last success">{_esc(success)}</td>'
        f'<td data-label="History">{_timeline(state.history)}</td>'
        f'<td data-label="Runbook"><a href="{_esc(runbook_url)}#{_esc(check.anchor)}">'
        f"{_esc(check.runbook)}</a></td></tr>"
    )


def _failing_for(state: CheckState, now: float) -> str:
    """How long the check has failed or errored without a break, from its history."""
    streak = 0
    for past in reversed(state.history):
        if past.status not in NEEDS_ATTENTION:
            break
        streak += 1
    if streak == 0:
        return ""
    first = state.history[-streak]
    whole = streak == len(state.history) == state.history.maxlen
    runs = f"{streak} run" + ("" if streak == 1 else "s")
    return f"{'at least ' if whole else ''}{format_duration(now - first.started_at)} ({runs})"


def _diagnosis_step(state: CheckState) -> int | None:
    """The first failing troubleshooting step the no-positions diagnosis names, if any."""
    if state.latest is None or state.check.name != "no_positions_diagnosis":
        return None
    step = str(state.latest.observations.get("step", ""))
    number = step.split("_", 1)[0]
    return int(number) if number.isdigit() else None


def _remedy(state: CheckState, runbook_url: str) -> str:
    check = state.check
    steps = runbook_steps(check.runbook)
    if not steps:
        link = f'<a href="{_esc(runbook_url)}#{_esc(check.anchor)}">{_esc(check.runbook)}</a>'
        return (
            f'<div class="remedy"><p>Runbook: {link}. The runbook has no numbered step for '
            "this check.</p></div>"
        )
    current = _diagnosis_step(state)
    items = []
    for step in steps:
        here = step.section.anchor is Anchor.TROUBLESHOOTING and step.number == current
        opening = '<li class="current">' if here else "<li>"
        items.append(
            f"{opening}"
            f'<a href="{_esc(runbook_url)}#{_esc(step.section.anchor)}">{_esc(step.label)}</a>: '
            f"{_markdown(step.text)}{' ← the first failing step' if here else ''}</li>"
        )
    return f'<div class="remedy"><p>What the runbook says:</p><ol>{"".join(items)}</ol></div>'


def _attention_item(state: CheckState, now: float, runbook_url: str) -> str:
    check, latest = state.check, state.latest
    status, word, mark, reason = _status(state)
    failing = _failing_for(state, now)
    why = f' <span class="reason">({_esc(reason)})</span>' if reason else ""
    age = " · ".join(
        part
        for part in (
            f"failing for {failing}" if failing else "",
            f"last run {_ago(now, latest.started_at if latest else None)}",
            f"last success {_ago(now, state.last_success_at)}",
        )
        if part
    )
    return (
        f'<li class="{status}" id="attention-{_esc(check.name)}" '
        f'data-check="{_esc(check.name)}" data-status="{status}">'
        f'<h3><span class="status {status}"><span class="word">{mark} {_esc(word)}</span>'
        f"{why}</span>"
        f"<code>{_esc(check.name)}</code></h3>"
        f'<p class="summary">{_esc(_summary(state))}</p>'
        f'<p class="age muted">{_esc(age)} · <a href="#check-{_esc(check.name)}">its row '
        "on the board</a></p>"
        f"{_remedy(state, runbook_url)}</li>"
    )


def _attention(failing: list[CheckState], now: float, runbook_url: str) -> str:
    if not failing:
        return (
            '<section id="attention" aria-labelledby="attention-title">'
            '<h2 id="attention-title">Needs attention</h2>'
            '<p class="all-clear">Nothing: every check passes or is not expected now.</p>'
            "</section>"
        )
    items = "".join(_attention_item(s, now, runbook_url) for s in failing)
    return (
        '<section id="attention" aria-labelledby="attention-title">'
        f'<h2 id="attention-title">Needs attention ({len(failing)})</h2>'
        f'<ol class="attention">{items}</ol></section>'
    )


def _readiness_item(readiness: SectionReadiness) -> str:
    """One section's line: ready, not ready (what fails), not expected yet (what is not green
    while the stack warms up after an open) or not verified (what did not run)."""
    section = readiness.section
    unverified = (
        f"not verified: {', '.join(readiness.unverified)} (skipped while the market was "
        "closed, or not run yet)"
    )
    waiting = (
        f"not expected yet: {', '.join(readiness.not_expected)} (not green while the stack "
        "warms up after the open)"
    )
    notes = [
        text
        for text, names in ((waiting, readiness.not_expected), (unverified, readiness.unverified))
        if names
    ]
    count = len(readiness.checks)
    if readiness.failing:
        status, mark, word = "fail", MARKS[Status.FAIL], "not ready"
        detail = "; ".join([f"failing: {', '.join(readiness.failing)}", *notes])
    elif readiness.not_expected:
        status, mark, word = NOT_EXPECTED, MARKS[Status.SKIPPED], "not expected yet"
        detail = "; ".join(notes)
    elif readiness.unverified:
        status, mark, word = "skipped", MARKS[Status.SKIPPED], "not verified"
        detail = unverified
    else:
        status, mark, word = "ok", MARKS[Status.OK], "ready"
        detail = (
            f"all {count} check{'s' if count != 1 else ''} pass or are not expected now"
            if count
            else "no enabled checks"
        )
    return (
        f'<li data-section="{section.slug}" data-ready="{status}">'
        f'<span class="status {status}"><span class="word">{mark} {word}</span></span> '
        f'<a href="#section-{section.slug}">{_esc(section)}</a>: {_esc(detail)}</li>'
    )


def _readiness(states: list[CheckState]) -> str:
    """Each runbook section's checklist, judged as runbook_section_ok judges it."""
    items = "".join(_readiness_item(readiness) for readiness in readiness_by_section(states))
    return (
        '<section aria-labelledby="readiness-title"><h2 id="readiness-title">Readiness by '
        f'runbook section</h2><ul class="readiness">{items}</ul></section>'
    )


def _board(states: list[CheckState], now: float, runbook_url: str) -> str:
    tables = []
    for section in Section:
        rows = [s for s in states if s.check.section == section]
        if not rows:
            continue
        body = "".join(_check_row(s, now, runbook_url) for s in rows)
        tables.append(
            f'<table id="section-{section.slug}" aria-describedby="headline">'
            f"<caption>{_esc(section)}</caption>"
            '<thead><tr><th scope="col">Check</th><th scope="col">Status</th>'
            '<th scope="col">Summary</th><th scope="col">Last run</th>'
            '<th scope="col">Last success</th><th scope="col">History</th>'
            '<th scope="col">Runbook step</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    return (
        '<section id="board" aria-labelledby="board-title"><h2 id="board-title">All checks, '
        f"by runbook section</h2>{''.join(tables)}</section>"
    )


def render_status_page(
    board: Mapping[str, CheckState],
    calendar: Calendar,
    *,
    now: float | None = None,
    runbook_url: str = DEFAULT_RUNBOOK_URL,
    telemetry_path: str = "/metrics",
) -> str:
    """The whole page as HTML, from the board's states (by check name).

    The exporter's own links are relative (`./metrics`): behind a reverse proxy that serves
    the exporter under a path prefix they stay inside it. `telemetry_path` is the path the
    metrics are served on (--web.telemetry-path)."""
    now = time.time() if now is None else now
    states = list(board.values())
    failing = [
        s
        for s in states
        if s.latest and s.latest.status in NEEDS_ATTENTION and _shown(s.latest) != NOT_EXPECTED
    ]
    market_only = [s.check.name for s in states if s.check.market_hours_only]
    headline = (
        f'<a href="#attention">{len(failing)} of {len(states)} checks failing</a>'
        if failing
        else _esc(f"All {len(states)} checks passing or not expected now")
    )
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{f"✗ {len(failing)} failing · " if failing else ""}SEP runbook — quantops-exporter</title>
<style>{CSS}</style></head>
<body><header><h1>SEP operations runbook</h1>
<p id="headline" class="headline" role="status"><strong>{headline}</strong> · {_esc(stamp)} ·
refreshes every {REFRESH_SECONDS}s</p>
<nav><a href="#board">All checks</a><a href="{_esc("." + telemetry_path)}">Metrics</a>
<a href="./api/v1/checks">Checks (JSON)</a><a href="./-/ready">Ready</a>
<a href="{_esc(runbook_url)}">Runbook</a></nav></header>
<main>{_attention(failing, now, runbook_url)}{market_section(calendar, now)}
{_readiness(states)}
{_board(states, now, runbook_url)}
{weekend_section(market_only, calendar, now)}</main>
<footer><p class="muted">quantops-exporter {_esc(__version__)} · results are from each check's
last run; this page runs nothing.</p></footer></body></html>
"""
