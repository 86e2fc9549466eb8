"""The status page's market parts: the market heading, the session strip, the holiday closures
and the Weekend / Market Close rules, all from the calendar the checks use.

The strip agrees with that calendar: on a weekend or a holiday every session reads closed, as
`sessions_open` reads them. Only under QUANTOPS_MARKET_HOURS=always (the demo's default), whose
calendar counts every session as open as a policy, does the strip show the sessions by their
local hours, with a note saying so.
"""

# The page is typeset: the en dash between opening hours is meant.
# ruff: noqa: RUF001

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from quantops_exporter.humanize import format_countdown
from quantops_exporter.market import (
    SESSION_HOURS,
    AlwaysOpenCalendar,
    Calendar,
    FxCalendar,
    Session,
    closure_summary,
    local_sessions,
    transitions,
)

NEW_YORK = ZoneInfo("America/New_York")  # where the FX market opens and closes


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _name(session: Session) -> str:
    return session.value.replace("_", " ").title()


def market_section(calendar: Calendar, now: float) -> str:
    """The market heading, the session strip and the holiday closures."""
    always = isinstance(calendar, AlwaysOpenCalendar)
    trading = local_sessions(now) if always else calendar.open_sessions(now)
    pills = []
    for hours in SESSION_HOURS:
        state = "open" if hours.session in trading else "closed"
        clock = datetime.fromtimestamp(now, hours.zone).strftime("%a %H:%M")
        pills.append(
            f'<span class="pill {state}" data-session="{hours.session.value}">'
            f"{_esc(_name(hours.session))}: {state} "
            f'<span class="muted">{_esc(clock)} local, {hours.opens:%H:%M}–'
            f"{hours.closes:%H:%M}</span></span>"
        )
    if always:
        market = "open (QUANTOPS_MARKET_HOURS=always)"
        note = (
            "<p>The checks treat the market and every session as open "
            "(QUANTOPS_MARKET_HOURS=always); the sessions above are by their local hours.</p>"
        )
    else:
        market, note = market_state(calendar, now), ""
    if isinstance(calendar, FxCalendar):
        note += _closures(calendar)
    return (
        f'<section aria-label="Market sessions"><h2 id="market">Market: {_esc(market)}</h2>'
        f'<div class="strip">{"".join(pills)}</div>{note}</section>'
    )


def market_state(calendar: Calendar, now: float) -> str:
    """`open · closes in 2 d 4 h (Fri 17:00 New York)`, `closed (holiday 12-25) · opens in
    2 d 5 h (Sun 27 Dec 17:00 New York)`."""
    coming = transitions(calendar, now)
    if calendar.is_open(now):
        state, verb, moment = "open", "closes", coming.next_close
    else:
        why = calendar.closed_for(now) if isinstance(calendar, FxCalendar) else None
        state = f"closed ({why})" if why else "closed"
        verb, moment = "opens", coming.next_open
    if moment is None:
        return state
    shown = "%a %H:%M" if moment - now < 6 * 86_400 else "%a %d %b %H:%M"
    when = datetime.fromtimestamp(moment, NEW_YORK).strftime(shown)
    return f"{state} · {verb} in {format_countdown(moment - now)} ({when} New York)"


def _closures(calendar: FxCalendar) -> str:
    """The holidays the FX calendar closes (QUANTOPS_MARKET_CLOSURES)."""
    if not calendar.closures:
        return "<p>Holiday closures (QUANTOPS_MARKET_CLOSURES): none.</p>"
    listed = ", ".join(str(closure) for closure in calendar.closures)
    return (
        f"<p>Holiday closures (QUANTOPS_MARKET_CLOSURES): <code>{_esc(listed)}</code>. Each "
        "closes its FX trading day, 17:00 New York the day before to 17:00, like a "
        "weekend.</p>"
    )


def weekend_section(market_only: Iterable[str], calendar: Calendar, now: float) -> str:
    """Weekend / Market Close: what the calendar changes, and whether (and why) it is in force
    now."""
    state = (
        f"In force now: {closure_summary(calendar, now)}"
        if not calendar.is_open(now)
        else "Not in force: the market is open"
    )
    return (
        '<section aria-label="Weekend and market close"><h2>Weekend / Market Close</h2>'
        f"<p>{_esc(state)}. While the FX market is closed (weekends and holiday closures) "
        "these checks are skipped and not expected: "
        f"{_esc(', '.join(market_only))}. WS ages stretch and allocator-lite keeps its "
        "previous weights; by default the kill switch is expected ON until the first session "
        "opens (Weekend §1-§2), then resume with the Pre-Open Spin-Up checks above.</p></section>"
    )
