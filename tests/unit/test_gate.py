"""`check --wait`'s gate logic on a fake clock: it waits for the open, runs through the warm-up
and gives the verdict the issue asks for, at moments derived from today."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from quantops_exporter.checks.base import Check, CheckContext, Outcome
from quantops_exporter.checks.verdict import Reason, Status, Verdict
from quantops_exporter.cli import build_parser
from quantops_exporter.gate import RETRY_SECONDS, WAIT_FOR_OPEN_SECONDS, wait_for_green
from quantops_exporter.market import AlwaysOpenCalendar, Calendar
from tests.factories import make_check, outcome
from tests.moments import (
    default_calendar,
    next_dec_25_noon,
    next_jan_1_noon,
    next_open_after,
    next_saturday_noon,
    next_sunday_open,
)

WARM_UP = 300.0


async def _not_run(_ctx: CheckContext) -> Verdict:
    raise AssertionError("the gate runs checks through the run it is given")


MANIFOLD = make_check(_not_run, name="manifold_freshness")
GATES = make_check(_not_run, name="gates_eligible")


class World:
    """A fake clock that sleeping advances, and a stack whose checks turn green at set times."""

    def __init__(self, start: datetime, green_from: dict[str, float]) -> None:
        self.now = start.timestamp()
        self.green_from = green_from  # check name -> when it first passes (inf: never)
        self.runs: list[float] = []
        self.said: list[str] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    async def run(self) -> list[tuple[Check, Outcome]]:
        self.runs.append(self.now)
        self.now += 0.5  # a run takes a while
        results = []
        for check in (MANIFOLD, GATES):
            passes = self.now >= self.green_from[check.name]
            status = Status.OK if passes else Status.FAIL
            reason = Reason.NONE if passes else Reason.STALE
            results.append((check, outcome(check.name, status, reason, started_at=self.now)))
        return results

    async def gate(self, calendar: Calendar | None = None) -> list[tuple[Check, Outcome]] | None:
        results = await wait_for_green(
            self.run,
            calendar or default_calendar(),
            WARM_UP,
            self.said.append,
            clock=self.clock,
            sleep=self.sleep,
        )
        return None if results is None else list(results)


def opens() -> list[tuple[str, datetime]]:
    """The opens the gate meets: the next Sunday's, and the ones after the next holidays."""
    return [
        ("the next Sunday open", next_sunday_open()),
        ("the open after the next Dec 25", next_open_after(next_dec_25_noon())),
        ("the open after the next Jan 1", next_open_after(next_jan_1_noon())),
    ]


def status_of(results: list[tuple[Check, Outcome]] | None) -> dict[str, Status]:
    assert results is not None
    return {check.name: o.status for check, o in results}


@pytest.mark.parametrize(("name", "opening"), opens(), ids=[name for name, _ in opens()])
async def test_started_two_minutes_before_the_open_it_passes_once_the_stack_is_green(
    name: str, opening: datetime
) -> None:
    """Started at 16:58 it runs nothing while closed, then from the open every 10 s until the
    stack is green (here four minutes in) and returns that green run, inside the warm-up."""
    world = World(
        opening - timedelta(minutes=2),
        {
            "manifold_freshness": opening.timestamp() + 50,
            "gates_eligible": opening.timestamp() + 240,
        },
    )
    results = await world.gate()
    assert status_of(results) == {"manifold_freshness": Status.OK, "gates_eligible": Status.OK}
    assert world.runs[0] == opening.timestamp()  # nothing before the open
    assert opening.timestamp() + 240 <= world.runs[-1] < opening.timestamp() + WARM_UP
    gaps = {round(b - a, 1) for a, b in zip(world.runs, world.runs[1:], strict=False)}
    assert gaps == {RETRY_SECONDS}
    assert "waiting 2 min for the open" in world.said[0]
    assert any("not green yet: manifold_freshness (fail/stale)" in line for line in world.said)
    assert world.said[-1].startswith("green at")


@pytest.mark.parametrize(("name", "opening"), opens(), ids=[name for name, _ in opens()])
async def test_a_stack_still_red_when_the_warm_up_ends_returns_that_run(
    name: str, opening: datetime
) -> None:
    """A manifold writer that never resumes: the verdict is the first run started after the
    warm-up, naming what is still not green."""
    world = World(
        opening - timedelta(minutes=2),
        {"manifold_freshness": float("inf"), "gates_eligible": opening.timestamp() + 240},
    )
    results = await world.gate()
    assert status_of(results) == {"manifold_freshness": Status.FAIL, "gates_eligible": Status.OK}
    end = opening.timestamp() + WARM_UP
    assert world.runs[-1] == end and world.runs[-2] < end  # exactly one run after the warm-up
    assert world.said[-1].endswith("with 1 not green: manifold_freshness (fail/stale)")


@pytest.mark.parametrize(
    ("name", "moment"),
    [
        ("saturday noon", next_saturday_noon),
        ("dec 25 noon", next_dec_25_noon),
        ("61 minutes before the sunday open", lambda: next_sunday_open() - timedelta(minutes=61)),
    ],
)
async def test_a_market_that_does_not_open_within_the_bound_is_not_verified_at_once(
    name: str, moment: Callable[[], datetime]
) -> None:
    """Further than an hour from the open the gate runs nothing and waits for nothing: it
    returns None (exit 3) at once, saying why the market is closed and when it opens."""
    world = World(moment(), {"manifold_freshness": 0.0, "gates_eligible": 0.0})
    start = world.now
    assert await world.gate() is None
    assert world.runs == [] and world.now == start
    assert world.said[0].startswith("not verified: FX market closed for the ")
    assert f"waits at most {int(WAIT_FOR_OPEN_SECONDS // 3600)} h for the open" in world.said[0]
    holiday = name.startswith("dec 25")
    assert ("holiday 12-25" in world.said[0]) == holiday
    assert ("weekend" in world.said[0]) == (not holiday)


async def test_exactly_an_hour_before_the_open_it_waits() -> None:
    """The bound is inclusive: 16:00 on Sunday waits the hour."""
    opening = next_sunday_open()
    world = World(opening - timedelta(hours=1), {"manifold_freshness": 0.0, "gates_eligible": 0.0})
    assert await world.gate() is not None
    assert world.runs == [opening.timestamp()]


async def test_mid_week_or_always_open_it_runs_once_like_check() -> None:
    """With the warm-up long over (Wednesday) or no open at all (`always`), one run decides,
    green or red, and nothing is said."""
    wednesday = next_sunday_open() + timedelta(days=2, hours=17)
    for calendar in (default_calendar(), AlwaysOpenCalendar()):
        for green_from in (0.0, float("inf")):
            world = World(wednesday, {"manifold_freshness": green_from, "gates_eligible": 0.0})
            await world.gate(calendar)
            assert len(world.runs) == 1 and world.said == []


async def test_started_inside_the_warm_up_it_retries_until_it_ends() -> None:
    """Started at 17:03 after the open, the gate still waits out the warm-up's last two minutes
    before calling the stack red."""
    opening = next_sunday_open()
    world = World(
        opening + timedelta(minutes=3), {"manifold_freshness": float("inf"), "gates_eligible": 0.0}
    )
    results = await world.gate()
    assert status_of(results)["manifold_freshness"] is Status.FAIL
    assert world.runs[0] == opening.timestamp() + 180
    assert world.runs[-1] == opening.timestamp() + WARM_UP


def test_wait_and_assume_open_exclude_each_other_and_the_help_states_the_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--wait` judges the real open, `--assume-open` pretends: together they are a usage error
    (exit 2); `check --help` says how long --wait may wait."""
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["check", "--wait", "--assume-open"])
    assert raised.value.code == 2
    assert "not allowed with argument --wait" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--wait" in help_text and "at most 1 h, else exit 3" in help_text
