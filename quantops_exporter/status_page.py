"""The status page: the runbook as a board, server-rendered, offline, self-refreshing.

Accessible by construction: one semantic table per runbook section with a caption and column
headers; status is written out (and marked with a tick, cross or dash) so colour is never
the only signal.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from quantops_exporter import __version__
from quantops_exporter.board import CheckState
from quantops_exporter.checks.base import Outcome
from quantops_exporter.checks.catalog import DEFAULT_RUNBOOK_URL, Section
from quantops_exporter.checks.verdict import MARKS, Status
from quantops_exporter.humanize import format_duration
from quantops_exporter.market import Calendar, Session

REFRESH_SECONDS = 10

CSS = """
:root{--ok:#1a7f37;--fail:#cf222e;--error:#9a6700;--skipped:#57606a;--bg:#fff;--fg:#1f2328}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--ok:#3fb950;
--fail:#f85149;--error:#d29922;--skipped:#8b949e}}
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem;
background:var(--bg);color:var(--fg)}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
nav a{margin-right:1rem}table{border-collapse:collapse;width:100%;table-layout:fixed}
th:nth-child(1){width:17%}th:nth-child(2){width:11%}th:nth-child(3){width:33%}
th:nth-child(4),th:nth-child(5){width:8%}th:nth-child(6){width:8%}th:nth-child(7){width:15%}
td{overflow-wrap:anywhere}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border-bottom:1px solid #8884;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{font-size:.85rem}.status{font-weight:700;white-space:nowrap}
tr.ok .status{color:var(--ok)}tr.fail .status{color:var(--fail)}
tr.error .status{color:var(--error)}tr.skipped .status,tr.pending .status{color:var(--skipped)}
tr.fail,tr.error{background:#cf222e14}
.strip{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}
.pill{border:1px solid #8886;border-radius:1rem;padding:.15rem .7rem}
.pill.open{border-color:var(--ok);color:var(--ok)}.pill.closed{color:var(--skipped)}
.diagnosis{border-left:4px solid var(--fail);padding:.4rem .8rem;margin:.8rem 0}
.timeline{display:flex;gap:2px}.timeline span{width:8px;height:14px;display:inline-block}
.t-ok{background:var(--ok)}.t-fail{background:var(--fail)}.t-error{background:var(--error)}
.t-skipped{background:var(--skipped)}small{opacity:.75}
@media (max-width:700px){thead{display:none}td{display:block;border:0;padding:.1rem .4rem}
tr{display:block;border-bottom:1px solid #8886;padding:.4rem 0}
td[data-label]::before{content:attr(data-label) ": ";font-weight:600}}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _timeline(history: Iterable[Outcome]) -> str:
    boxes = "".join(
        f'<span class="t-{o.status.value}" title="{_esc(o.status.value)}: '
        f'{_esc(o.reason.value)}"></span>'
        for o in history
    )
    statuses = ", ".join(o.status.value for o in history) or "no runs yet"
    return (
        f'<div class="timeline" role="img" aria-label="recent runs: {_esc(statuses)}">{boxes}</div>'
    )


def _ago(now: float, moment: float | None) -> str:
    return "never" if moment is None else f"{format_duration(now - moment)} ago"


def _check_row(state: CheckState, now: float, runbook_url: str) -> str:
    check, latest = state.check, state.latest
    status = latest.status.value if latest else "pending"
    mark = MARKS[latest.status] if latest else "…"
    reason = latest.reason.value if latest and latest.reason.value != "none" else ""
    summary = latest.summary if latest else "not run yet"
    ran = _ago(now, latest.started_at if latest else None)
    success = _ago(now, state.last_success_at)
    disabled = "" if check.enabled else " <small>(disabled)</small>"
    return (
        f'<tr class="{status}" id="check-{_esc(check.name)}" data-check="{_esc(check.name)}" '
        f'data-status="{status}">'
        f'<td data-label="Check"><code>{_esc(check.name)}</code>{disabled}</td>'
        f'<td class="status" data-label="Status">{mark} {_esc(status)}'
        f"{f' <small>({_esc(reason)})</small>' if reason else ''}</td>"
        f'<td data-label="Summary">{_esc(summary)}</td>'
        f'<td data-label="Last run">{_esc(ran)}</td>'
        f'<td data-label="Last success">{_esc(success)}</td>'
        f'<td data-label="History">{_timeline(state.history)}</td>'
        f'<td data-label="Runbook"><a href="{_esc(runbook_url)}#{_esc(check.anchor)}">'
        f"{_esc(check.runbook)}</a></td></tr>"
    )


def _sessions(calendar: Calendar, now: float) -> str:
    open_now = calendar.open_sessions(now)
    market = "open" if calendar.is_open(now) else "closed (Fri 17:00 to Sun 17:00 New York)"
    pills = "".join(
        f'<span class="pill {"open" if s in open_now else "closed"}">'
        f"{_esc(s.value.replace('_', ' ').title())}: {'open' if s in open_now else 'closed'}"
        f"</span>"
        for s in Session
    )
    return (
        f'<section aria-label="Market sessions"><h2>Market: {_esc(market)}</h2>'
        f'<div class="strip">{pills}</div></section>'
    )


def _weekend(states: Iterable[CheckState], calendar: Calendar, now: float) -> str:
    """Weekend / Market Close: what the calendar changes, and whether it is in force now."""
    market_only = [s.check.name for s in states if s.check.market_hours_only]
    state = (
        "In force now: the market is closed"
        if not calendar.is_open(now)
        else "Not in force: the market is open"
    )
    return (
        '<section aria-label="Weekend and market close"><h2>Weekend / Market Close</h2>'
        f"<p>{_esc(state)}. While the FX market is closed (Friday 17:00 to Sunday 17:00 New "
        f"York) these checks are skipped and not expected: {_esc(', '.join(market_only))}. "
        "WS ages stretch and allocator-lite keeps its previous weights; by default the kill "
        "switch is expected ON until the first session opens (Weekend §1-§2), then resume "
        "with the Pre-Open Spin-Up checks above.</p></section>"
    )


def _diagnosis(states: Mapping[str, CheckState]) -> str:
    state = states.get("no_positions_diagnosis")
    if state is None or state.latest is None or state.latest.status is not Status.FAIL:
        return ""
    step = state.latest.observations.get("step", "?")
    return (
        f'<section class="diagnosis" aria-label="No-positions diagnosis">'
        f"<h2>No positions while gates are green: step {_esc(step)}</h2>"
        f"<p>{_esc(state.latest.summary)}</p></section>"
    )


def render_status_page(
    board: Mapping[str, CheckState],
    calendar: Calendar,
    *,
    now: float | None = None,
    runbook_url: str = DEFAULT_RUNBOOK_URL,
) -> str:
    """The whole page as HTML, from the board's states (by check name)."""
    now = time.time() if now is None else now
    states = list(board.values())
    failing = [s for s in states if s.latest and s.latest.status in (Status.FAIL, Status.ERROR)]
    headline = (
        f"{len(failing)} of {len(states)} checks failing"
        if failing
        else f"All {len(states)} checks passing or not expected now"
    )
    sections = []
    for section in Section:
        rows = [s for s in states if s.check.section == section]
        if not rows:
            continue
        body = "".join(_check_row(s, now, runbook_url) for s in rows)
        sections.append(
            f'<table aria-describedby="headline"><caption>{_esc(section)}</caption>'
            '<thead><tr><th scope="col">Check</th><th scope="col">Status</th>'
            '<th scope="col">Summary</th><th scope="col">Last run</th>'
            '<th scope="col">Last success</th><th scope="col">History</th>'
            '<th scope="col">Runbook step</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{"✗ " if failing else ""}SEP runbook — quantops-exporter</title>
<style>{CSS}</style></head>
<body><header><h1>SEP operations runbook</h1>
<p id="headline" role="status"><strong>{_esc(headline)}</strong> · {_esc(stamp)} ·
refreshes every {REFRESH_SECONDS}s</p>
<nav><a href="/metrics">Metrics</a><a href="/api/v1/checks">Checks (JSON)</a>
<a href="/-/ready">Ready</a><a href="{_esc(runbook_url)}">Runbook</a></nav></header>
<main>{_sessions(calendar, now)}{_diagnosis(board)}{"".join(sections)}
{_weekend(states, calendar, now)}</main>
<footer><small>quantops-exporter {_esc(__version__)} · results are from each check's last
run; this page runs nothing.</small></footer></body></html>
"""
