"""The simulated SEP stack: Valkey writers plus the backend API, switchable between scenarios.

Its `schedule` says how the writers follow the clock: `steady` (fresh around the clock) or
`week` (the runbook's week on the calendar: week.py). Every moment is read from `clock`
(time.time by default, so libfaketime moves the simulator with the daemon).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from redis import exceptions as redis_errors

from quantops_exporter.market import Calendar, FxCalendar, Session
from quantops_exporter.simulator.api import build_allocator, build_backend
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.state import Snapshot, Variant, snapshot
from quantops_exporter.simulator.valkey_server import ValkeyServer, free_port
from quantops_exporter.simulator.week import Phase, Schedule, WeekSchedule, WeekState
from quantops_exporter.simulator.world import World, build_world
from quantops_exporter.simulator.writer import ValkeyWriter, write_forever

log = structlog.get_logger("quantops_exporter.simulator")


class SepSimulator:
    """Writes the stack's keys on cadence and serves its API on a loopback port."""

    def __init__(
        self,
        valkey_url: str,
        instruments: tuple[str, ...],
        *,
        calendar: Calendar | None = None,
        clock: Callable[[], float] = time.time,
        server: ValkeyServer | None = None,
        variant: Variant | None = None,
        scenario: Scenario = Scenario.HEALTHY,
        host: str = "127.0.0.1",
        api_port: int | None = None,
        allocator_port: int | None = None,
        write_every: float = 1.0,
        schedule: Schedule = Schedule.STEADY,
        intended_sessions: Iterable[Session] = (Session.TOKYO, Session.LONDON, Session.NEW_YORK),
    ) -> None:
        self.instruments = instruments
        self.calendar = calendar or FxCalendar()
        self.clock = clock
        self.schedule = schedule
        self._week = (
            WeekSchedule(self.calendar, intended_sessions) if schedule is Schedule.WEEK else None
        )
        self._phase: Phase | None = None
        self.server = server
        self.variant = variant or Variant()
        self.scenario = scenario
        self.host = host
        self.api_port = api_port or free_port(host)
        self.allocator_port = allocator_port or free_port(host)
        self._write_every = write_every
        self._client = aioredis.Redis.from_url(
            valkey_url, socket_connect_timeout=1, socket_timeout=1
        )
        self._writer = ValkeyWriter(self._client)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._allocator: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        """Base URL of the simulated backend API."""
        return f"http://{self.host}:{self.api_port}"

    @property
    def allocator_url(self) -> str:
        """Base URL of the simulated allocator-lite."""
        return f"http://{self.host}:{self.allocator_port}"

    def week_state(self, now: float | None = None) -> WeekState | None:
        """Where the `week` schedule is at `now` (default: the clock); None when `steady`."""
        if self._week is None:
            return None
        state = self._week.state(self.clock() if now is None else now)
        if state.phase is not self._phase:
            log.info(
                "simulator_week_phase",
                phase=state.phase.value,
                previous=self._phase.value if self._phase else None,
                kill_switch=state.kill_switch,
                flat=state.flat,
            )
            self._phase = state.phase
        return state

    def world(self) -> World:
        """What the stack reports right now."""
        now = self.clock()
        return build_world(
            self.scenario,
            now,
            self.instruments,
            normalized_weights=self.variant.weights_scale == "normalized",
            week=self.week_state(now),
        )

    def snapshot(self) -> Snapshot:
        """What Valkey should hold right now."""
        now = self.clock()
        return snapshot(
            self.scenario,
            now,
            self.instruments,
            market_open=self.calendar.is_open(now),
            variant=self.variant,
            week=self.week_state(now),
        )

    async def write_now(self) -> bool:
        """Apply the current snapshot at once (tests call this instead of waiting a tick)."""
        return await self._writer.apply(self.snapshot)

    def writes_paused(self) -> asyncio.Lock:
        """`async with sim.writes_paused():` stops the writers for the block (reads go on)."""
        return self._writer.paused()

    async def start(self) -> None:
        """Write the keys once, then keep writing them, and serve the API."""
        await self.write_now()
        self._task = asyncio.create_task(
            write_forever(self._writer, self.snapshot, self._stopping, every=self._write_every)
        )
        self._runner = await _serve(build_backend(self), self.host, self.api_port)
        if self.scenario is not Scenario.ALLOCATOR_DOWN:
            await self._start_allocator()
        log.info(
            "simulator_started",
            api=self.api_url,
            allocator=self.allocator_url,
            scenario=self.scenario.value,
            schedule=self.schedule.value,
        )

    async def _start_allocator(self) -> None:
        if self._allocator is None:
            self._allocator = await _serve(build_allocator(self), self.host, self.allocator_port)

    async def _stop_allocator(self) -> None:
        if self._allocator is not None:
            await self._allocator.cleanup()
            self._allocator = None

    async def stop(self) -> None:
        """Stop writing and serving; close the client."""
        if self._task is not None:
            self._stopping.set()
            # The write in flight finishes within the client's 1 s socket timeout; cancel only
            # if it does not (e.g. a paused Valkey).
            _done, pending = await asyncio.wait({self._task}, timeout=3)
            for task in pending:
                task.cancel()
                await asyncio.wait({task}, timeout=3)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._stop_allocator()
        await self._client.aclose()

    async def set_scenario(self, scenario: Scenario) -> None:
        """Switch scenario; `valkey_down` stops the owned server, leaving it restarts it."""
        if scenario is Scenario.VALKEY_DOWN and self.server is None:
            raise ValueError("valkey_down needs a Valkey server the simulator started itself")
        previous, self.scenario = self.scenario, scenario
        if self.server is not None:
            if scenario is Scenario.VALKEY_DOWN:
                await asyncio.to_thread(self.server.stop)
            elif previous is Scenario.VALKEY_DOWN:
                await asyncio.to_thread(self.server.start)
        if scenario is Scenario.ALLOCATOR_DOWN:
            await self._stop_allocator()
        elif self._runner is not None:
            await self._start_allocator()
        if scenario is not Scenario.VALKEY_DOWN:
            await self.write_now()
        log.info("simulator_scenario", scenario=scenario.value, previous=previous.value)

    async def kill_switch_engaged(self) -> bool | None:
        """What the backend reads from `ops:kill_switch` (None when Valkey is unreachable)."""
        try:
            value = await self._client.get("ops:kill_switch")
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
            return None
        text = value.decode() if isinstance(value, bytes) else value
        return text is None or str(text).strip().lower() not in ("0", "false")


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port; hung handlers (api_slow) are cancelled on shutdown."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
