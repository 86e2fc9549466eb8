"""The simulator's `week` schedule: the runbook's week on the FX calendar, moment by moment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import fakeredis
import pytest
from aiohttp import test_utils

from quantops_exporter.market import AlwaysOpenCalendar, Closure, FxCalendar, Session
from quantops_exporter.simulator.api import build_backend
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.state import Snapshot, snapshot
from quantops_exporter.simulator.week import (
    MANIFOLD_TTL,
    Phase,
    Schedule,
    WeekSchedule,
    WeekState,
)
from quantops_exporter.simulator.world import build_world
from quantops_exporter.simulator.writer import ValkeyWriter

NEW_YORK = ZoneInfo("America/New_York")
INTENDED = (Session.TOKYO, Session.LONDON, Session.NEW_YORK)
PAIRS = ("EUR_USD", "USD_JPY", "GBP_USD", "EUR_JPY")
CALENDAR = FxCalendar(Closure.parse(text) for text in ("12-25", "01-01"))


def ny(text: str) -> float:
    """Unix time of a New York wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()


def state(text: str) -> WeekState:
    """The week at a New York wall time, from a fresh schedule."""
    return WeekSchedule(CALENDAR, INTENDED).state(ny(text))


@pytest.mark.parametrize(
    ("moment", "phase", "kill_switch", "flat"),
    [
        ("2026-02-18T10:00:00", Phase.TRADING, False, False),  # a Wednesday
        ("2026-02-20T16:54:59", Phase.TRADING, False, False),
        ("2026-02-20T16:55:00", Phase.EXIT_BEFORE_CLOSE, False, True),  # ExitBeforeClose
        ("2026-02-20T17:00:00", Phase.CLOSED, True, True),  # the close: ON
        ("2026-02-21T12:00:00", Phase.CLOSED, True, True),
        ("2026-02-22T16:59:59", Phase.CLOSED, True, True),
        ("2026-02-22T17:00:00", Phase.WARM_UP, True, True),  # the open
        ("2026-02-22T17:03:59", Phase.WARM_UP, True, True),
        ("2026-02-22T17:04:00", Phase.PRE_OPEN, True, True),  # warm, Tokyo not open yet
        ("2026-02-22T19:04:59", Phase.PRE_OPEN, True, True),  # Tokyo opened at 19:00 EST
        ("2026-02-22T19:05:00", Phase.TRADING, False, True),  # spin-up done: OFF
        ("2026-02-22T19:05:30", Phase.TRADING, False, False),  # reconciled: positions back
        ("2026-12-24T16:55:00", Phase.EXIT_BEFORE_CLOSE, False, True),  # before Christmas
        ("2026-12-25T12:00:00", Phase.CLOSED, True, True),
        ("2026-12-27T17:02:00", Phase.WARM_UP, True, True),  # the Sunday after
        ("2026-01-01T12:00:00", Phase.CLOSED, True, True),  # New Year's Day, a Thursday
        ("2026-01-01T17:04:00", Phase.PRE_OPEN, True, True),  # reopens that evening
    ],
)
def test_the_runbook_week(moment: str, phase: Phase, kill_switch: bool, flat: bool) -> None:
    """Flattened before the close, ON and frozen while closed, warm-up and spin-up after."""
    week = state(moment)
    assert (week.phase, week.kill_switch, week.flat) == (phase, kill_switch, flat)
    assert week.market_open is CALENDAR.is_open(ny(moment))


def test_writers_freeze_at_the_close_and_manifolds_expire() -> None:
    """Every writer's last cycle is before the close; the manifold's EX runs out 5 min later."""
    week = state("2026-02-21T12:00:00")
    close = ny("2026-02-20T17:00:00")
    assert week.manifold_at == close - 10
    assert week.manifold_expires_at == close - 10 + MANIFOLD_TTL
    assert (week.signals_at, week.blob_at) == (close - 30, close - 60)
    assert week.newest_candle == close - 60  # the 16:59 candle, complete at the close
    assert week.requalified  # the evaluator's last blob, as it left it


def test_the_warm_up_resumes_each_writer_on_its_cadence() -> None:
    """Blob at the open, manifolds 45-50 s later, signals at 2 min, candles after the first
    minute, the echo gate three evaluator cycles after the first signals."""
    opened = ny("2026-02-22T17:00:00")
    friday = ny("2026-02-20T17:00:00")
    schedule = WeekSchedule(CALENDAR, INTENDED)
    first = schedule.state(opened + 5)
    assert first.blob_at == opened and not first.requalified
    assert first.manifold_at == friday - 10 and first.manifold_expires_at < opened  # expired
    assert first.signals_at == friday - 30 and first.newest_candle == friday - 60
    assert schedule.state(opened + 49).manifold_at == friday - 10
    assert schedule.state(opened + 50).manifold_at == opened + 50
    assert schedule.state(opened + 60).newest_candle == opened
    assert schedule.state(opened + 119).signals_at == friday - 30
    assert schedule.state(opened + 120).signals_at == opened + 120
    assert not schedule.state(opened + 239).requalified
    assert schedule.state(opened + 240).requalified


@pytest.mark.parametrize(
    ("sunday", "tokyo"),
    [
        ("2026-03-08", "20:00"),  # New York on EDT since 02:00: Tokyo opens at 20:00
        ("2026-11-01", "19:00"),  # back on EST since 02:00: at 19:00
    ],
)
def test_dst_sundays_open_at_17_and_wait_for_tokyo(sunday: str, tokyo: str) -> None:
    """The open stays 17:00 New York; the switch goes OFF 5 min after Tokyo's 09:00."""
    week = state(f"{sunday}T17:05:00")
    assert week.opened_at == ny(f"{sunday}T17:00:00")
    assert week.kill_switch_off_at == ny(f"{sunday}T{tokyo}:00") + 300
    assert week.phase is Phase.PRE_OPEN


def test_a_market_that_never_closes_is_the_steady_stack() -> None:
    """`always` hours: no close, no warm-up: every writer fresh, trading."""
    now = ny("2026-02-21T12:00:00")
    week = WeekSchedule(AlwaysOpenCalendar(), INTENDED).state(now)
    assert (week.phase, week.kill_switch, week.flat) == (Phase.TRADING, False, False)
    assert now - week.manifold_at < 10


def test_the_snapshot_follows_the_week() -> None:
    """While closed: switch "1", no manifold (expired), frozen signals and blob, flat world."""
    now = ny("2026-02-21T12:00:00")
    week = state("2026-02-21T12:00:00")
    snap = snapshot(Scenario.HEALTHY, now, PAIRS, market_open=False, week=week)
    assert snap.strings["ops:kill_switch"] == "1"
    assert not any(key.startswith("ws:last:manifold:") for key in snap.strings)
    newest = max(snap.zsets["sep:signal_index:EUR_USD"].values())
    assert newest == week.signals_at * 1000  # the default variant spells scores in ms
    assert json.loads(snap.strings["opt:rolling:gates_blob"])["ts"] == week.blob_at * 1000
    world = build_world(Scenario.HEALTHY, now, PAIRS, week=week)
    assert world.positions == () and world.margin_used == 0
    assert world.newest_candle == week.newest_candle


def test_a_live_manifold_carries_its_ttl() -> None:
    """Open: written with the milliseconds its EX has left; a fault's key has none."""
    now = ny("2026-02-18T10:00:04")
    week = state("2026-02-18T10:00:04")
    snap = snapshot(Scenario.HEALTHY, now, PAIRS, market_open=True, week=week)
    assert snap.expiring["ws:last:manifold:EUR_USD"] == (MANIFOLD_TTL - 4) * 1000
    stale = snapshot(Scenario.STALE_MANIFOLD, now, PAIRS, market_open=True, week=week)
    assert "ws:last:manifold:EUR_USD" not in stale.expiring
    assert "ws:last:manifold:USD_JPY" in stale.expiring


def test_faults_still_apply_over_the_week() -> None:
    """A switch engaged by a fault stays engaged; stalled signals stay stalled while open."""
    now = ny("2026-02-18T10:00:00")
    week = state("2026-02-18T10:00:00")
    engaged = snapshot(Scenario.KILL_SWITCH_ENGAGED, now, PAIRS, market_open=True, week=week)
    assert engaged.strings["ops:kill_switch"] == "1"
    stalled = snapshot(Scenario.SIGNALS_STALLED, now, PAIRS, market_open=True, week=week)
    assert now - max(stalled.zsets["sep:signal_index:EUR_USD"].values()) / 1000 >= 900


async def test_an_expiring_key_is_written_once_per_value() -> None:
    """The writer sets an expiring key with its TTL, does not refresh or revive it while the
    value is the same (a frozen writer), and writes the next cycle's value again."""
    client = fakeredis.FakeAsyncRedis()
    writer = ValkeyWriter(client)
    week = state("2026-02-20T17:02:00")  # closed two minutes ago: EX left until 17:04:50
    now = ny("2026-02-20T17:02:00")

    def make() -> Snapshot:
        return snapshot(Scenario.HEALTHY, now, PAIRS, market_open=False, week=week)

    assert await writer.apply(make)
    ttl = await client.pttl("ws:last:manifold:EUR_USD")
    assert 0 < ttl <= 170_000
    await client.delete("ws:last:manifold:EUR_USD")  # as if it expired
    assert await writer.apply(make)
    assert await client.get("ws:last:manifold:EUR_USD") is None  # not brought back
    later = state("2026-02-22T17:01:00")  # the hydrator's next write after the open
    reopened = ny("2026-02-22T17:01:00")
    assert await writer.apply(
        lambda: snapshot(Scenario.HEALTHY, reopened, PAIRS, market_open=True, week=later)
    )
    assert await client.get("ws:last:manifold:EUR_USD") is not None
    await client.aclose()


@pytest.fixture
async def week_api() -> AsyncIterator[tuple[test_utils.TestClient, list[float]]]:  # type: ignore[type-arg]
    """The simulated backend on the `week` schedule, its clock set by the test."""
    now = [ny("2026-02-21T12:00:00")]
    sim = SepSimulator(
        "redis://127.0.0.1:1/0",  # never connected: these endpoints do not read Valkey
        PAIRS,
        calendar=CALENDAR,
        clock=lambda: now[0],
        schedule=Schedule.WEEK,
        intended_sessions=INTENDED,
    )
    async with test_utils.TestClient(test_utils.TestServer(build_backend(sim))) as http:
        yield http, now
    await sim.stop()


async def test_the_api_lives_the_week(
    week_api: tuple[test_utils.TestClient, list[float]],  # type: ignore[type-arg]
) -> None:
    """/_sim/week says where the week is; positions and candles follow it."""
    http, now = week_api
    body = await (await http.get("/_sim/week")).json()
    assert (body["schedule"], body["phase"], body["kill_switch"]) == ("week", "closed", True)
    assert (await (await http.get("/api/oanda/positions")).json())["positions"] == []
    candles = (await (await http.get("/api/candles")).json())["items"]
    assert candles[-1]["time"].startswith("2026-02-20T21:59")  # Friday's 16:59 New York
    now[0] = ny("2026-02-18T10:00:30")
    body = await (await http.get("/_sim/week")).json()
    assert (body["phase"], body["kill_switch"], body["flat"]) == ("trading", False, False)
    assert len((await (await http.get("/api/oanda/positions")).json())["positions"]) == 3
