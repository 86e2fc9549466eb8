"""The pre-open gate the README recommends for cron, lived through the Sunday open by real
processes on one fake clock (libfaketime, ten times as fast): the simulated stack resuming as
the runbook says (Weekend §2: kill switch ON until the first session, writers frozen and
manifolds expired over the weekend, tests/e2e/fakeweek.py), `check ... --wait` started two
minutes before the open, and the demo daemon's status page read in Chromium during the
warm-up. Moments are derived from today (tests/moments.py)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from quantops_exporter.gate import WAIT_FOR_OPEN_SECONDS
from quantops_exporter.simulator.scenarios import Scenario
from tests.conftest import clean_env, require_libfaketime
from tests.e2e.fakeweek import LIBFAKETIME, Demo, demo_at, run_check
from tests.e2e.test_status_page import chromium
from tests.moments import (
    SharedClock,
    next_dec_25_noon,
    next_open_after,
    next_saturday_noon,
    next_sunday_open,
)

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "operating.md")  # both show the cron line
SPEED = 10.0  # the open and its five-minute warm-up in about 45 s
WARM_UP = 300.0  # QUANTOPS_PREOPEN_READY_WITHIN_SECONDS' default
STARTED_BEFORE = timedelta(minutes=2)  # the gate starts at 16:58 New York
# Fake seconds the gate may need beyond the warm-up's end (its last run) and a factor for a
# loaded machine: the limits below are derived from the fake span, never a bare constant.
LAST_RUN, LOAD = 60.0, 3.0


def readme_gate() -> tuple[str, str, list[str]]:
    """The README's crontab line (docs/operating.md shows the same): its minute, its hour and
    the `check` arguments it runs."""
    lines = []
    for document in DOCUMENTS:
        line = re.search(
            r"^# (\d+) (\d+) \* \* 0\s+quantops-exporter --env-file \S+ check (.+)$",
            document.read_text(encoding="utf-8"),
            re.MULTILINE,
        )
        assert line, f"{document.name} has no Sunday crontab line for the gate"
        lines.append((line[1], line[2], line[3].split()))
    assert lines[0] == lines[1], "the README and docs/operating.md recommend different gates"
    return lines[0]


def test_the_readme_recommends_the_waiting_gate() -> None:
    """The cron line runs `check --section pre-open --wait` before the Sunday 17:00 open (the
    old line's --assume-open could never pass on a stack resting as the runbook says), within
    the hour the gate waits for the open."""
    minute, hour, args = readme_gate()
    assert args == ["--section", "pre-open", "--wait"]
    before = 17 * 60 - (int(hour) * 60 + int(minute))
    assert 0 < before * 60 <= WAIT_FOR_OPEN_SECONDS


async def until_fake(clock: SharedClock, moment: float) -> None:
    """Sleep (real time) until `clock` reads `moment`."""
    await asyncio.sleep(max(0.0, clock.real_until(moment)))


def shown_rows(dom: str) -> dict[str, tuple[str, str]]:
    """Each board row: its shown status and the reason text beside it."""
    found = re.findall(
        r'<tr class="[a-z-]+" id="check-\w+" data-check="(\w+)" data-status="([a-z-]+)">'
        r'.*?<td class="status[^"]*" data-label="Status">(.*?)</td>',
        dom,
    )
    return {check: (status, re.sub(r"<[^>]+>", "", cell)) for check, status, cell in found}


def attention(dom: str) -> set[str]:
    """The checks in the "Needs attention" list."""
    return set(re.findall(r'<li class="[a-z-]+" id="attention-(\w+)"', dom))


async def warm_up_dom(demo: Demo, tmp_path: Path, opened: float) -> str:
    """The status page in Chromium during the warm-up, once a check has run since the open,
    failed and is not expected (what the issue saw painted red)."""
    url = f"{demo.exporter}/"
    while demo.clock.now() < opened + WARM_UP - 30:
        rows = await demo.checks()
        if any(
            r["status"] in ("fail", "error")
            and r["expected"] is False
            and float(r["started_at"]) >= opened  # type: ignore[arg-type]
            for r in rows
        ):
            dom = await chromium(url, tmp_path, "--dump-dom")
            if any(
                status == "not-expected" and "fail:" in reason
                for status, reason in shown_rows(dom).values()
            ):
                return dom
        await asyncio.sleep(0.3)
    raise AssertionError(f"no not-expected failing check seen during the warm-up: {rows}")


async def test_the_gate_waits_through_the_open_and_passes_on_a_stack_that_resumes(
    tmp_path: Path,
) -> None:
    """The README's command, started at 16:58 before the next Sunday open on a stack that rests
    and resumes as the runbook says, waits for the open, exits 0 on a run started within the
    warm-up, and says on stderr what it waited for; meanwhile the status page counts no check
    that is not expected as failing and calls no section "not ready" for one."""
    _minute, _hour, args = readme_gate()
    opening = next_sunday_open()
    opened = opening.timestamp()
    clock = SharedClock(opening - STARTED_BEFORE - timedelta(minutes=1), SPEED)
    async with demo_at(tmp_path, clock) as demo:
        await until_fake(clock, opened - STARTED_BEFORE.total_seconds())
        launched = clock.now()
        assert launched < opened - 30, "the demo started too slowly to test the wait"
        span = opened + WARM_UP + LAST_RUN - launched
        gate = asyncio.create_task(
            run_check(demo.check_env(), *args, "--json", limit=clock.real_seconds(span) * LOAD)
        )
        dom = await warm_up_dom(demo, tmp_path, opened)
        code, stdout, stderr = await gate

    shown, listed = shown_rows(dom), attention(dom)
    not_expected = {c for c, (status, _reason) in shown.items() if status == "not-expected"}
    assert not_expected and not not_expected & listed, (not_expected, listed)
    failing = {c for c, (status, _reason) in shown.items() if status in ("fail", "error")}
    assert failing == listed  # only checks failing while expected need attention
    headline = f"{len(listed)} of 22 checks failing" if listed else "All 22 checks passing"
    assert headline in dom
    for line in re.findall(r'data-ready="fail">(.*?)</li>', dom):
        named = re.search(r"failing: ([\w, ]+)", re.sub(r"<[^>]+>", "", line))
        assert named and set(named[1].split(", ")) <= listed, line

    assert code == 0, stderr
    rows = json.loads(stdout)
    assert {row["status"] for row in rows} <= {"ok", "skipped"}
    assert all(opened <= row["started_at"] < opened + WARM_UP for row in rows), rows
    assert re.search(r"waiting [12] min for the open \(Sun 17:00:00 New York\)", stderr), stderr
    assert "not green yet: manifold_freshness" in stderr and "green at " in stderr


async def test_the_gate_fails_naming_the_manifold_when_its_writer_does_not_resume(
    tmp_path: Path,
) -> None:
    """Another open (the one after the next Dec 25, a holiday's or a Sunday's): the ws-hydrator
    does not resume for EUR_USD, so when the warm-up ends the gate exits 1 with
    manifold_freshness failing as stale, judged by a run started after the warm-up."""
    _minute, _hour, args = readme_gate()
    opening = next_open_after(next_dec_25_noon())
    opened = opening.timestamp()
    clock = SharedClock(opening - STARTED_BEFORE - timedelta(minutes=1), SPEED)
    async with demo_at(tmp_path, clock, Scenario.STALE_MANIFOLD) as demo:
        await until_fake(clock, opened - STARTED_BEFORE.total_seconds())
        launched = clock.now()
        assert launched < opened - 30, "the demo started too slowly to test the wait"
        span = opened + WARM_UP + LAST_RUN - launched
        code, stdout, stderr = await run_check(
            demo.check_env(), *args, "--json", limit=clock.real_seconds(span) * LOAD
        )
    assert code == 1, stderr
    rows = {row["check"]: row for row in json.loads(stdout)}
    manifold = rows["manifold_freshness"]
    assert (manifold["status"], manifold["reason"], manifold["expected"]) == ("fail", "stale", True)
    assert "EUR_USD" in manifold["summary"]
    assert all(row["started_at"] >= opened + WARM_UP for row in rows.values())
    assert re.search(
        r"the warm-up ended at \w+ 17:05:00 New York with \d+ not green: .*"
        r"manifold_freshness \(fail/stale\)",
        stderr,
    ), stderr


MOMENTS = {
    "saturday noon": (next_saturday_noon, "the weekend"),
    "61 minutes before the sunday open": (
        lambda: next_sunday_open() - timedelta(minutes=61),
        "the weekend",
    ),
    "dec 25 noon": (next_dec_25_noon, "the holiday 12-25"),
}


@pytest.mark.parametrize(("moment", "why"), MOMENTS.values(), ids=MOMENTS.keys())
async def test_the_gate_does_not_wait_for_an_open_beyond_its_bound(
    moment: object, why: str
) -> None:
    """Further than an hour before the open the gate exits 3 at once, running nothing (the stack
    is not even reachable here), saying why the market is closed and that it waits an hour."""
    require_libfaketime(LIBFAKETIME)
    start: datetime = moment()  # type: ignore[operator]
    clock = SharedClock(start)
    env = clean_env() | {
        "LD_PRELOAD": str(LIBFAKETIME),
        "QUANTOPS_MARKET_HOURS": "fx",
        "VALKEY_URL": "redis://127.0.0.1:1/0",  # nothing listens: nothing may be read
    }
    code, stdout, stderr = await run_check(
        env | clock.env(), "--section", "pre-open", "--wait", limit=60
    )
    assert code == 3 and stdout == "", (stdout, stderr)
    assert f"not verified: FX market closed for {why} (" in stderr
    assert "--wait waits at most 1 h for the open" in stderr
