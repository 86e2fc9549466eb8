"""A holiday as an operator sees it: `quantops-exporter demo` on FX hours at noon on the next
Dec 25 (and the next Jan 1), on a libfaketime clock, read in Chromium. The issue saw every
market-hours summary give the weekend's hours, "New York: open" beside "Market: closed", and
`candles` call a 19-hour-old candle "newest fresh"."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

import pytest

from quantops_exporter.checks.catalog import CHECKS
from tests.e2e.conftest import until
from tests.e2e.fakeweek import demo_at
from tests.e2e.test_status_page import chromium
from tests.moments import SharedClock, next_dec_25_noon, next_jan_1_noon

pytestmark = pytest.mark.e2e
READY_WITHIN = 90.0  # real seconds for every check's first run, on a loaded machine
HOLIDAYS = {
    "the next dec 25 noon": (next_dec_25_noon, "holiday 12-25"),
    "the next jan 1 noon": (next_jan_1_noon, "holiday 01-01"),
}


def text(fragment: str) -> str:
    """The visible text of an HTML fragment."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def summaries(dom: str) -> dict[str, str]:
    """Each board row's summary as the browser shows it."""
    return {
        check: text(summary)
        for check, summary in re.findall(
            r'data-check="(\w+)" data-status="[a-z-]+">.*?<td class="summary" '
            r'data-label="Summary">(.*?)</td>',
            dom,
        )
    }


@pytest.mark.parametrize(("moment", "holiday"), HOLIDAYS.values(), ids=HOLIDAYS.keys())
async def test_a_holiday_page_names_the_holiday_and_opens_no_session(
    tmp_path: Path, moment: object, holiday: str
) -> None:
    """Every summary on the page that gives a closure gives the holiday, none the weekend; the
    market heading says closed for the holiday; no session pill reads open; `candles` says its
    freshness was not judged; no check resting as the runbook says needs attention."""
    start: datetime = moment()  # type: ignore[operator]
    async with demo_at(tmp_path, SharedClock(start)) as demo:

        async def every_check_ran() -> list[dict[str, object]] | None:
            rows = await demo.checks()
            return rows if all(row["status"] is not None for row in rows) else None

        rows = await until(every_check_ran, READY_WITHIN, "every check's first run")
        dom = await chromium(f"{demo.exporter}/", tmp_path, "--dump-dom")

    shown = summaries(dom)
    assert set(shown) == {check.name for check in CHECKS}
    assert not [s for s in shown.values() if "weekend" in s.lower()], shown
    for check in CHECKS:
        if check.market_hours_only:
            assert f"FX market closed for the {holiday} (" in shown[check.name], shown[check.name]
    assert "freshness not judged: FX market closed for the " + holiday in shown["candles"]
    assert "newest fresh" not in shown["candles"]
    for row in rows:  # the JSON the API serves says the same
        assert "weekend" not in str(row["summary"]).lower(), row

    heading = re.search(r'<h2 id="market">(.*?)</h2>', dom)
    assert heading and text(heading[1]).startswith(f"Market: closed ({holiday}) · opens in ")
    pills = re.findall(r'class="pill (\w+)" data-session="(\w+)"', dom)
    assert len(pills) == 4 and {state for state, _session in pills} == {"closed"}, pills
    in_force = re.search(r"<p>In force now: (.*?)\. While", dom)
    assert in_force and f"for the {holiday} (" in text(in_force[1])
    resting = {row["check"] for row in rows if row["expected"] is False}
    listed = set(re.findall(r'<li class="[a-z-]+" id="attention-(\w+)"', dom))
    assert resting and not resting & listed
