"""`check --wait`: a pre-open gate that waits for the open and through the warm-up after it.

Started before the FX market opens (cron, Sunday 16:55 New York), it waits for the open, at most
WAIT_FOR_OPEN_SECONDS; from the open it runs the checks every RETRY_SECONDS until they are all
green, for as long as the warm-up lasts (QUANTOPS_PREOPEN_READY_WITHIN_SECONDS, the same window
in which the daemon does not expect the market-hours checks yet and no alert fires). The last
run is the verdict: green as soon as it is, or the first run started after the warm-up ended.
Started while the market is open and the warm-up is over, it runs once, as `check` does.

The clock is read again after every pause, so a stepped or faked clock (libfaketime) is
followed; the pauses are asyncio sleeps, which libfaketime's speed-up shortens as well.
Progress goes to `say` (stderr): the wait, each change in what is not green, the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from quantops_exporter.checks.base import Check, Outcome
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.humanize import format_countdown
from quantops_exporter.market import Calendar, closure_summary

WAIT_FOR_OPEN_SECONDS = 3600.0  # --wait waits at most an hour for the market to open
RETRY_SECONDS = 10.0  # between runs in the warm-up: the ws-hydrator's cycle, the fastest writer
PAUSE_SECONDS = 60.0  # the longest single pause before the open (then the clock is read again)
NEW_YORK = ZoneInfo("America/New_York")

Results = Sequence[tuple[Check, Outcome]]


def not_green(results: Results) -> list[str]:
    """What keeps a run from passing the gate: `check (status/reason)` for each check that
    failed, erred, or was skipped because the market is closed (it verified nothing)."""
    return [
        f"{check.name} ({outcome.status}/{outcome.reason})"
        for check, outcome in results
        if outcome.status in (Status.FAIL, Status.ERROR) or outcome.reason is Reason.MARKET_CLOSED
    ]


def _clock_text(moment: float) -> str:
    return datetime.fromtimestamp(moment, NEW_YORK).strftime("%a %H:%M:%S")


async def wait_for_green(
    run: Callable[[], Awaitable[Results]],
    calendar: Calendar,
    warm_up: float,
    say: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    bound: float = WAIT_FOR_OPEN_SECONDS,
) -> Results | None:
    """Wait for the open (at most `bound` seconds), then run the checks until they are green
    or the warm-up (`warm_up` seconds from the open) has ended; the last run's results, or
    None when the market does not open within `bound`."""
    start = clock()
    if not calendar.is_open(start):
        opens = calendar.next_open(start)
        if opens is None or opens - start > bound:
            when = (
                "it does not open within the calendar's reach"
                if opens is None
                else f"it opens {_clock_text(opens)} New York, in {format_countdown(opens - start)}"
            )
            say(
                f"not verified: {closure_summary(calendar, start)}; {when}, and --wait waits "
                f"at most {format_countdown(bound)} for the open"
            )
            return None
        say(
            f"{closure_summary(calendar, start)}: waiting {format_countdown(opens - start)} for "
            f"the open ({_clock_text(opens)} New York)"
        )
        while not calendar.is_open(now := clock()):
            if now - start > bound:  # the clock jumped past the open and beyond
                say(f"not verified: the market did not open within {format_countdown(bound)}")
                return None
            coming = calendar.next_open(now)
            await sleep(min(PAUSE_SECONDS, max(0.05, (coming or now + PAUSE_SECONDS) - now)))
    opened = calendar.last_open(clock())
    warm_end = opened + warm_up if opened is not None else clock()
    warming = warm_end > clock()
    if warming:
        say(
            f"the market is open; the warm-up lasts until {_clock_text(warm_end)} New York: "
            f"running the checks every {RETRY_SECONDS:g}s until they are green"
        )
    shown: list[str] | None = None
    while True:
        began = clock()
        results = await run()
        missing = not_green(results)
        if not missing:
            if warming:
                say(f"green at {_clock_text(clock())} New York")
            return results
        if began >= warm_end:
            if warming:
                say(
                    f"the warm-up ended at {_clock_text(warm_end)} New York with "
                    f"{len(missing)} not green: {', '.join(missing)}"
                )
            return results
        if missing != shown:
            say(f"{_clock_text(began)} New York, not green yet: {', '.join(missing)}")
            shown = missing
        await sleep(max(0.0, min(began + RETRY_SECONDS, warm_end) - clock()))
