"""The runbook's week, replayed against the shipped alert rules.

For each moment of the week (the Friday close, Saturday, the Sunday open's warm-up, both
Sundays on which New York changes its clocks, Dec 25, Jan 1, mid-week; each the next one from
today, tests/moments.py), the real daemon and its
simulated stack (`quantops-exporter demo` on FX hours: the `week` schedule,
quantops_exporter/simulator/week.py) run as one process under libfaketime, its clock set to that
moment; /metrics is scraped every 2 s for 24 s, the scrapes are held for 35 minutes
(tests/e2e/replay.py) and `promtool test rules` evaluates the shipped rule file on them: no
alert may fire while the stack behaves as the runbook says (an `alert_rule_test` expecting none
for every alert of the file at 1, 5, 15 and 30 minutes, and no ALERTS at any of the 15 s rule
evaluations in between), and exactly one, for the right check, for each injected fault.

A held exposition cannot show what only a daemon that lived through a transition knows (a
warm-up's failing runs, how long positions have been flat), so the Friday close and the Sunday
open are also lived through: the clock runs fifteen times faster (libfaketime `x15`; Friday
16:54-17:04, Sunday 16:58-17:12), scraped every 15 fake seconds as Prometheus would, then held
like the others. The moments run at once (the lived ones once the others are up, with the CPU
first), so the whole replay takes about a minute and a half.

A failure names each alert that fired and when (New York time, from a probe of every 15 s
evaluation), what the daemon exported that made it (each failing check's status, reason and
summary, runs in error, the sections not ok, the dependencies down) and where the simulated
week was (`GET /_sim/week`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from quantops_exporter.simulator.fakeclock import faketime_env
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import require_libfaketime, require_program
from tests.e2e.fakeweek import demo_output, inherited_env, real_timeouts, stop_demo
from tests.e2e.replay import (
    Alert,
    Scrape,
    alert_names,
    firing,
    input_series,
    parse_exposition,
    probe_tests,
    promtool_tests,
    rule_identifiers,
    seconds_of,
    spans,
    steps,
)
from tests.moments import (
    at,
    next_clock_change,
    next_dec_25_noon,
    next_jan_1_noon,
    next_ordinary_week,
)

# One worker under `make test` (--dist loadgroup) runs every moment, once (the replays
# fixture is session-wide: a module-wide one was seen set up twice, 150 s each).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("replay")]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/quantops-runbook.rules.yml"
# The thread-safe build, as libfaketime advises for threaded programs (Valkey, the daemon's
# executor): with libfaketime.so.1 one demo in a loaded run hung at start-up.
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
NEW_YORK = ZoneInfo("America/New_York")
READY_WITHIN = 90.0  # every moment starts at once on a small machine
FAULT_FROM = ("5m", "15m", "30m")  # a fault's alert fires by then (the longest `for:` is 3m)
# How much faster the clock runs for a lived-through transition: 15 fits a quarter of an hour
# in a minute, and leaves the daemon's scheduler a third of a second (5 s of its time, the
# shortest check interval and so misfire grace) before a late run counts as missed.
LIVED = 15
AT_SPEED_NICENESS = 10  # the real-speed demos yield the CPU to the faster ones
LISTEN_ATTEMPTS = 3  # a demo that lost its port to another moment's process starts again


@dataclass(frozen=True, slots=True)
class Moment:
    """A moment of the week (New York wall time) and what the stack does then."""

    name: str
    new_york: str  # ISO local time in New York: the fake clock starts there
    scenario: Scenario = Scenario.HEALTHY
    pages: tuple[str, str] | None = None  # (alertname, check) the fault must page, alone
    speed: int = 1  # libfaketime's rate: 15 lives 14 minutes in 56 s
    window: float = 24.0  # real seconds of scrapes
    scrape_every: float = 2.0  # real seconds between scrapes
    eval_times: tuple[str, ...] = ("1m", "5m", "15m", "30m")  # after the start, fake time

    @property
    def epoch(self) -> float:
        """The moment as Unix time."""
        return datetime.fromisoformat(self.new_york).replace(tzinfo=NEW_YORK).timestamp()


def lived(name: str, new_york: str, minutes: int) -> Moment:
    """`minutes` from `new_york` lived at LIVED times the speed, scraped every 15 s of it, then
    held: judged every two minutes of it and at 30 and 45 minutes."""
    return Moment(
        name,
        new_york,
        speed=LIVED,
        window=minutes * 60 / LIVED,
        scrape_every=15 / LIVED,
        eval_times=(*(f"{m}m" for m in range(2, minutes + 1, 2)), "30m", "45m"),
    )


def _local(moment: datetime) -> str:
    """A derived moment as Moment.new_york spells it (ISO, New York wall time)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


# Every moment derived from today (tests/moments.py), never a date: the next week with no
# holiday near it, the next Sundays on which New York moves its clocks, the next holidays.
WEEK = next_ordinary_week()
FORWARD, BACK = next_clock_change(forward=True), next_clock_change(forward=False)
MOMENTS = (
    Moment("wednesday 10:00", _local(WEEK.wednesday(10))),
    Moment("friday 16:55 (positions flattened)", _local(WEEK.friday(16, 55))),
    Moment("friday 17:05 (closed)", _local(WEEK.friday(17, 5))),
    Moment("saturday noon", _local(WEEK.saturday(12))),
    Moment("sunday 17:05 (open; kill switch ON until Tokyo)", _local(WEEK.sunday(17, 5))),
    Moment("sunday 17:05, clocks forward that morning", _local(at(FORWARD, 17, 5))),
    Moment("sunday 17:05, clocks back that morning", _local(at(BACK, 17, 5))),
    Moment("dec 25 noon (holiday)", _local(next_dec_25_noon())),
    Moment("jan 1 noon (holiday)", _local(next_jan_1_noon())),
    Moment(
        "wednesday 10:00, manifold stale",
        _local(WEEK.wednesday(10)),
        Scenario.STALE_MANIFOLD,
        ("SepRunbookManifoldStale", "manifold_freshness"),
    ),
    Moment(
        "saturday noon, kill switch API/Valkey mismatch",
        _local(WEEK.saturday(12)),
        Scenario.KILL_SWITCH_MISMATCH,
        ("SepRunbookKillSwitch", "kill_switch"),
    ),
    lived("friday close lived through, 16:54-17:04", _local(WEEK.friday(16, 54)), 10),
    lived("sunday open lived through, 16:58-17:12", _local(WEEK.sunday(16, 58)), 14),
)


@dataclass
class Replay:
    """What one moment's run produced."""

    moment: Moment
    port: int = 0  # chosen when its demo starts
    origin: float = 0.0  # the fake Unix time at grid second 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    texts: list[tuple[int, str]] = field(default_factory=list)  # (grid second, /metrics)
    scrapes: list[Scrape] = field(default_factory=list)  # parsed once every run has ended
    last_text: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    week: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    promtool_rc: int | None = None
    promtool_output: str = ""
    fired: dict[int, set[Alert]] = field(default_factory=dict)


def _nice(niceness: int) -> tuple[str, ...]:
    """The command prefix that runs a program at `niceness` (none without coreutils' nice)."""
    found = shutil.which("nice")
    return (found, "-n", str(niceness)) if niceness and found else ()


def _clock(moment: Moment) -> tuple[dict[str, str], int]:
    """libfaketime's settings for a clock now at the moment, running at its speed, and the
    offset in seconds (the clock reads real time + offset at the start, then runs at speed).
    At speed 1 only the wall clock moves, as NTP would set it (the simulator's waits avoid
    time.sleep, which fails so); faster, the monotonic clock too, or the daemon's timers would
    keep real time (`demo --at` does the same)."""
    now = time.time()
    return faketime_env(moment.epoch, moment.speed, now), round(moment.epoch - now)


async def _run_moment(replay: Replay, library: Path, workdir: Path) -> None:
    """Start the demo under libfaketime at the moment, scrape it, stop it."""
    try:
        await _live(replay, library, workdir)
    finally:
        replay.ready.set()  # ready or failed: nobody waits for it any longer


async def _live(replay: Replay, library: Path, workdir: Path) -> None:
    for attempt in range(1, LISTEN_ATTEMPTS + 1):
        process, log, spawned = await _spawn(replay, library, workdir)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                if not await _ready(http, replay, process, log, last=attempt == LISTEN_ATTEMPTS):
                    continue  # lost its port: again, on another
                replay.ready.set()
                await _scrape(replay, http, log, spawned)
                return
        finally:
            await stop_demo(process)
            replay.log = await _read(log)


async def _spawn(
    replay: Replay, library: Path, workdir: Path
) -> tuple[asyncio.subprocess.Process, Path, float]:
    """Start the demo at the moment, on a port chosen now: one chosen before every moment
    started could be taken meanwhile by another moment's Valkey or simulator (seen in CI)."""
    moment = replay.moment
    replay.port = free_port()
    clock, offset = _clock(moment)
    env = (
        # Without coverage's tracing at a faster clock (it slows a daemon two- to threefold;
        # the real-speed moments measure it), and with each check's timeout as many real
        # seconds as at speed 1 (within its interval): fifteen times shorter, a loaded
        # machine's loopback missed them and the API "flapped" (issue 19).
        inherited_env(moment.speed)
        | real_timeouts(moment.speed, keep_intervals=True)
        | {
            "QUANTOPS_MARKET_HOURS": "fx",
            "QUANTOPS_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            "TZ": "UTC",
            "LD_PRELOAD": str(library),
        }
        | clock
    )
    log = workdir / f"demo-{replay.port}.log"
    # A faster clock's daemon gets the CPU first: a third of a second late is a missed run
    # for it, while the others have five seconds.
    niceness = 0 if moment.speed != 1 else AT_SPEED_NICENESS
    spawned = time.time()
    replay.origin = spawned + offset
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *_nice(niceness),
            sys.executable,
            "-m",
            "quantops_exporter",
            "demo",
            "--web.listen-address",
            f"127.0.0.1:{replay.port}",
            "--scenario",
            moment.scenario.value,
            env=env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,  # its Valkey server too: one group to end if it hangs
        )
    return process, log, spawned


async def _ready(
    http: aiohttp.ClientSession,
    replay: Replay,
    process: asyncio.subprocess.Process,
    log: Path,
    *,
    last: bool,
) -> bool:
    """True once the demo is ready; False when it could not listen on its port (unless this
    was the last attempt: then, as any other failure, an AssertionError with its log)."""
    try:
        await _until_ready(http, f"http://127.0.0.1:{replay.port}", process, log)
    except AssertionError:
        said = await _read(log)  # taken before it started (one line), or at the bind (logged)
        if not last and ("cannot listen on" in said or '"event": "cannot_listen"' in said):
            return False
        raise
    return True


async def _scrape(replay: Replay, http: aiohttp.ClientSession, log: Path, spawned: float) -> None:
    """Scrape the demo for the moment's window, then read its checks and the simulator's week."""
    moment, base = replay.moment, f"http://127.0.0.1:{replay.port}"
    every, speed = moment.scrape_every, moment.speed
    # A faster clock's window counts from its start (its minutes are the point); another's
    # from when the daemon is ready.
    end = (spawned if speed != 1 else time.time()) + moment.window
    while True:
        taken = time.time()
        async with http.get(f"{base}/metrics") as response:
            text = await response.text()
        replay.texts.append((round((taken - spawned) * speed), text))
        replay.last_text = text
        left = end - time.time()
        if left < every:
            break
        await asyncio.sleep(every - ((time.time() - spawned) % every))
    async with http.get(f"{base}/api/v1/checks") as response:
        replay.checks = (await response.json())["checks"]
    simulator = _simulator_url(await _read(log))
    if simulator:
        async with http.get(f"{simulator}/_sim/week") as response:
            replay.week = await response.json()


async def _until_ready(
    http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process, log: Path
) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"the demo exited: {(await _read(log))[-2000:]}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{base}/-/ready") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not ready in {READY_WITHIN}s: {(await _read(log))[-2000:]}")


async def _read(path: Path) -> str:
    """The demo's banner and its daemon's log (see fakeweek.demo_output)."""
    return await asyncio.to_thread(demo_output, path)


def _simulator_url(banner: str) -> str | None:
    found = re.search(r"simulator\s+(http://\S+)", banner)
    return found.group(1) if found else None


async def _promtool(replay: Replay, promtool: str, workdir: Path, alerts: tuple[str, ...]) -> None:
    """Write the moment's promtool test and its probe, and run both."""
    keep = rule_identifiers(RULES.read_text())
    replay.scrapes = [Scrape(second, parse_exposition(text, keep)) for second, text in replay.texts]
    series = input_series(replay.scrapes, replay.origin, f"127.0.0.1:{replay.port}")
    moment = replay.moment
    dense = steps(max(seconds_of(at) for at in moment.eval_times))
    test = promtool_tests(
        RULES, moment.name, series, alerts, moment.eval_times, dense, moment.pages, FAULT_FROM
    )
    replay.promtool_rc, replay.promtool_output = await _run_promtool(
        promtool, workdir / f"replay-{replay.port}.test.yml", test
    )
    if replay.promtool_rc == 0:
        return  # nothing but the expected alert fired: no need to say when
    probe = probe_tests(RULES, moment.name, series, dense)
    _rc, printed = await _run_promtool(promtool, workdir / f"probe-{replay.port}.test.yml", probe)
    replay.fired = firing(printed)


async def _run_promtool(promtool: str, path: Path, document: dict[str, Any]) -> tuple[int, str]:
    text = json.dumps(document, indent=1)  # YAML is a superset of JSON, which dumps in C
    await asyncio.to_thread(path.write_text, text)
    process = await asyncio.create_subprocess_exec(
        *_nice(19),  # behind any daemon still running
        promtool,
        "test",
        "rules",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def _replay_all(library: Path, promtool: str, workdir: Path) -> dict[str, Replay]:
    replays = {m.name: Replay(m) for m in MOMENTS}
    at_speed = [r for r in replays.values() if r.moment.speed == 1]
    faster = [r for r in replays.values() if r.moment.speed != 1]

    async def one(replay: Replay, after: list[Replay]) -> Replay | None:
        # A faster clock starts once the others are up: their start-up would eat its minutes.
        for other in after:
            await other.ready.wait()
        try:
            await _run_moment(replay, library, workdir)
        except Exception as failed:  # noqa: BLE001 - reported per moment, the others go on
            replay.promtool_output = f"the run failed: {failed!r}"
            return None
        return replay

    ran = await asyncio.gather(*(one(r, []) for r in at_speed), *(one(r, at_speed) for r in faster))
    # Parsing and promtool only once every daemon has stopped: their CPU would make a faster
    # clock's daemon late (a third of a second is a missed run; 2 s of its time is 0.13 s).
    alerts = alert_names(RULES)
    evaluating = asyncio.Semaphore(2)

    async def evaluate(replay: Replay) -> None:
        async with evaluating:
            await _promtool(replay, promtool, workdir, alerts)

    await asyncio.gather(*(evaluate(r) for r in ran if r is not None))
    return replays


@pytest.fixture(scope="session")
def replays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Replay]]:
    """Every moment run at once, then evaluated by promtool (session-wide: one run)."""
    library = require_libfaketime(LIBFAKETIME)
    promtool = require_program("promtool", "apt-get install prometheus")
    workdir = tmp_path_factory.mktemp("week-replay")
    started = time.monotonic()
    results = asyncio.run(_replay_all(library, promtool, workdir))
    print(f"\nweek replay: {len(results)} moments in {time.monotonic() - started:.0f}s")
    for replay in results.values():
        print(report(replay))
    yield results


def _at(replay: Replay, second: int) -> str:
    """A grid second as New York wall time and minutes from the start."""
    local = datetime.fromtimestamp(round(replay.origin + second), NEW_YORK)
    return f"{local:%H:%M:%S} (+{second // 60}m{second % 60:02d}s)"


def report(replay: Replay) -> str:
    """What fired and when (every 15 s evaluation), and what the daemon exported that made
    it: failing checks with their summaries, runs in error, and (on a failure) the sections
    not ok and the dependencies down."""
    moment = replay.moment
    lines = [f"== {moment.name} ({moment.new_york} New York, scenario {moment.scenario.value})"]
    week = replay.week
    if week:
        lines.append(
            "   stack: phase {phase}, market {market}, kill switch {ks}, {flat}".format(
                phase=week.get("phase", week.get("schedule")),
                market="open" if week.get("market_open") else "closed",
                ks="ON" if week.get("kill_switch") else "OFF",
                flat="flat" if week.get("flat") else "positions open",
            )
        )
    if replay.promtool_rc is None:
        lines.append(f"   not evaluated: {replay.promtool_output}")
        lines.append(replay.log[-1500:])
        return "\n".join(lines)
    if replay.promtool_rc == 0:
        if moment.pages:
            lines.append(
                f"   passed: {moment.pages[0]} alone at {', '.join(FAULT_FROM)}; no other alert "
                "at any evaluation (every 15 s)"
            )
        else:
            lines.append("   passed: no alert at any evaluation (every 15 s)")
    elif not replay.fired:
        lines.append("   not probed")
    else:
        last = max(replay.fired)
        fired = spans(replay.fired)
        if not fired:
            lines.append(f"   no alert at any evaluation (every 15 s) up to {last // 60}m")
        for alert, runs in sorted(fired.items()):
            shown = ", ".join(
                f"{_at(replay, first)}-{_at(replay, end)}"
                + (" (held to the end)" if end == last else "")
                for first, end in runs
            )
            lines.append(f"   FIRED {alert}: {shown}")
    for check in replay.checks:
        if check.get("status") in ("fail", "error"):
            lines.append(
                f"   check {check['check']}: {check['status']}/{check['reason']} "
                f"(expected {check.get('expected')}): {check.get('summary')}"
            )
    errors: dict[str, int] = {}
    for line in replay.log.splitlines():
        if '"event": "check_status"' in line and '"status": "error"' in line:
            name = json.loads(line)["check"]
            errors[name] = errors.get(name, 0) + 1
    if errors:
        lines.append(f"   runs in error during the window (check: count): {errors}")
    for family in ("runbook_section_ok", "runbook_dependency_up"):
        if replay.promtool_rc == 0:
            break
        for line in replay.last_text.splitlines():
            if line.startswith(family + "{") and line.rstrip().endswith(" 0.0"):
                lines.append(f"   {line.strip()}")
    if replay.promtool_rc != 0 and not any(replay.fired.values()):
        lines.append("   promtool: " + replay.promtool_output.strip()[-3000:])
    return "\n".join(lines)


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.name for m in MOMENTS])
def test_the_week_pages_only_for_faults(moment: Moment, replays: dict[str, Replay]) -> None:
    """At rest no shipped alert fires (none at 1, 5, 15 and 30 minutes for each alert name, no
    ALERTS at any 15 s evaluation); a fault pages alone, for its check, from 5 minutes on
    (promtool, on the shipped rule file)."""
    replay = replays[moment.name]
    assert replay.scrapes, report(replay)
    assert "Traceback" not in replay.log, replay.log[-3000:]
    assert replay.promtool_rc == 0, report(replay)


def test_the_simulated_stack_was_where_the_runbook_says(replays: dict[str, Replay]) -> None:
    """The simulator lived the moment the daemon did (so a quiet replay is not a quiet stack
    at the wrong time): the phase, kill switch and positions of the runbook's week."""
    expected = {
        "wednesday 10:00": ("trading", False, False),
        "friday 16:55 (positions flattened)": ("exit_before_close", False, True),
        "friday 17:05 (closed)": ("closed", True, True),
        "saturday noon": ("closed", True, True),
        "sunday 17:05 (open; kill switch ON until Tokyo)": ("pre_open", True, True),
        "sunday 17:05, clocks forward that morning": ("pre_open", True, True),
        "sunday 17:05, clocks back that morning": ("pre_open", True, True),
        "dec 25 noon (holiday)": ("closed", True, True),
        "jan 1 noon (holiday)": ("closed", True, True),
        "friday close lived through, 16:54-17:04": ("closed", True, True),
        "sunday open lived through, 16:58-17:12": ("pre_open", True, True),
    }
    seen = {
        name: (r.week.get("phase"), r.week.get("kill_switch"), r.week.get("flat"))
        for name, r in replays.items()
        if name in expected
    }
    assert seen == expected, json.dumps({n: r.week for n, r in replays.items()}, indent=1)
