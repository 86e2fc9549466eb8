"""The running daemon: one generation at a time, its sources open and its checks scheduled.

    start()   open the first generation's sources and start its schedule
    reload()  build the next generation whole (configuration read off the loop within
              LOAD_TIMEOUT_SECONDS, sources opened, schedule built but not started); on any
              failure, or a web config that would lower the protection without saying so
              (webconfig.weakened), refuse it and keep the running one; otherwise swap it in one
              step, then retire the old one (its runs finish within their timeout, its sources
              close)
    stop()    stop scheduling, let runs finish within their timeout, close the sources

The board keeps every check's history across generations, and what checks remember between runs
(CheckMemory) survives too. Concurrent reload requests coalesce: whoever asks while a reload is
under way shares the one that starts after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog

from quantops_exporter.board import Board
from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.config import ConfigError
from quantops_exporter.daemon import DebugRun, Refusal, ReloadResult
from quantops_exporter.exposure import log_exposure
from quantops_exporter.files import off_loop
from quantops_exporter.generation import Generation, open_context
from quantops_exporter.metrics import MetricsBundle
from quantops_exporter.redact import redact
from quantops_exporter.scheduler import CheckScheduler, Lanes, NotRun, Refused
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.trace import capture
from quantops_exporter.webconfig import weakened

log = structlog.get_logger("quantops_exporter.runtime")
Loader = Callable[[], Generation]
# Bound at start-up (the listening socket, its TLS): a change needs a restart.
_RESTART_ONLY = (
    "listen_address",
    "web_telemetry_path",
    "web_config_file",
    "web_header_timeout_seconds",
    "web_idle_timeout_seconds",
    "web_max_connections",
)
# Reading the configuration: every file is bounded on its own (files.READ_TIMEOUT_SECONDS); this
# bounds the whole, for what a library reads itself (a hung mount under a certificate).
LOAD_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Running:
    """A generation with its sources open and its schedule built."""

    generation: Generation
    ctx: CheckContext
    scheduler: CheckScheduler
    sources: AsyncExitStack


class Runtime:
    """Runs one generation at a time and swaps in the next on reload (implements `Daemon`)."""

    def __init__(
        self,
        generation: Generation,
        *,
        board: Board,
        health: DependencyHealth,
        metrics: MetricsBundle,
        loader: Loader | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        load_timeout: float = LOAD_TIMEOUT_SECONDS,
    ) -> None:
        self._generation = generation
        self._served = generation  # the listening socket and its TLS are bound to this one
        self._board, self._health, self._metrics = board, health, metrics
        self._loader = loader or (lambda: generation)
        self._clock, self._monotonic = clock, monotonic
        self._memory = CheckMemory()
        self._running: Running | None = None
        self._reload_lock = asyncio.Lock()
        self._next_reload: asyncio.Future[ReloadResult] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Generations replaced by a reload whose runs in flight are finishing (by their task).
        self._retiring: dict[asyncio.Task[None], Running] = {}
        # One run of a check at a time, across generations and runs on demand.
        self._lanes = Lanes()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._load_timeout = load_timeout
        self._debug_lock = asyncio.Lock()
        self._debug_last: dict[str, float] = {}

    @property
    def board(self) -> Board:
        """Every check's latest outcome and history."""
        return self._board

    @property
    def generation(self) -> Generation:
        """The configuration in force."""
        return self._generation

    async def start(self) -> None:
        """Open the sources and start the schedule of the current generation."""
        running = await self._open(self._generation)
        self._running = running
        running.scheduler.start()

    async def stop(self) -> None:
        """Stop the schedule and close the sources. Runs in flight are cancelled: their results
        would leave with the process, and a stop must be prompt (Docker kills after 10 s)."""
        self._stopping = True
        self._stop_requested.set()  # a reload waiting for its files gives up
        if self._tasks:  # a reload under way finishes first; one still queued is refused
            await asyncio.wait(set(self._tasks))
        # Replaced generations: their grace ends now, and they close their sources themselves
        # (cancelling a retirement could cut its close short and leak a connection).
        retiring = dict(self._retiring)
        for old in retiring.values():
            old.scheduler.drop_runs()
        if retiring:
            await asyncio.wait(retiring)
        running, self._running = self._running, None
        if running is not None:
            await self._retire(running, grace=0.0)

    async def reload(self) -> ReloadResult:
        """Re-read the configuration and apply it; refuse it, keeping the running one, when it
        cannot be loaded or opened."""
        if self._next_reload is None:
            self._next_reload = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._reload_when_free())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(self._next_reload)

    async def _reload_when_free(self) -> None:
        async with self._reload_lock:
            result, self._next_reload = self._next_reload, None
            assert result is not None
            if self._stopping:
                result.set_result(ReloadResult(False, "the daemon is stopping"))
            else:
                result.set_result(await self._reload_once())

    async def _reload_once(self) -> ReloadResult:
        try:
            generation = await self._load()
            self._refuse_weaker(generation)
            running = await self._open(generation)
        except ConfigError as err:
            return self._refuse(str(err))
        except Exception as err:
            log.error("config_reload_crashed", error=str(err), exc_info=err)
            return self._refuse(f"cannot build the new configuration: {type(err).__name__}")
        old, notes = self._running, self._restart_notes(generation)
        if old is not None:  # nothing more of the old schedule starts once the new one has
            await old.scheduler.pause()
        # The swap: one synchronous step, so no reader ever sees half of each generation.
        self._board.reconfigure(generation.catalog)
        self._metrics.add_checks(generation.catalog)
        self._generation, self._running = generation, running
        running.scheduler.start()
        self._metrics.reload.record(True)
        settings = generation.settings
        log.info(
            "config_reloaded",
            valkey=redact(settings.valkey_url),
            api=redact(settings.sep_api_url),
            checks=[c.name for c in generation.enabled],
            notes=notes,
        )
        log_exposure(generation, self._served)
        if old is not None:
            self._retire_later(old)
        return ReloadResult(True, "; ".join(["reloaded", *notes]))

    def _retire_later(self, old: Running) -> None:
        """Let the replaced generation's runs in flight finish (and be recorded) in the
        background, then close its sources: the reload is answered at once (the lanes keep
        the new schedule's runs from running beside them). Every run is bounded by its timeout
        (the runner); the margin covers the bookkeeping."""
        grace = max(check.timeout for check in old.generation.catalog) + 1.0
        task = asyncio.create_task(self._retire(old, grace))
        self._retiring[task] = old
        task.add_done_callback(self._retiring.pop)

    async def _load(self) -> Generation:
        """The loader's generation, built on a thread of its own (files, YAML, bcrypt, TLS must
        not stall the loop); ConfigError when it takes too long or the daemon stops meanwhile."""

        async def bounded() -> Generation:
            async with asyncio.timeout(self._load_timeout):
                return await off_loop(self._loader, name="config load")

        load = asyncio.ensure_future(bounded())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({load, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not load.done():
            load.cancel()
            raise ConfigError("the daemon is stopping")
        try:
            return load.result()
        except TimeoutError:
            raise ConfigError(
                f"the configuration was not read within {self._load_timeout:g} s "
                "(a file on a hung mount?)"
            ) from None

    def _refuse_weaker(self, generation: Generation) -> None:
        reason = weakened(self._generation.web, generation.web)
        if reason is not None:
            path = generation.settings.web_config_file or self._generation.settings.web_config_file
            raise ConfigError(f"web config {path}: {reason}")

    def _refuse(self, error: str) -> ReloadResult:
        self._metrics.reload.record(False)
        log.error("config_reload_failed", error=error, hint="the previous configuration runs on")
        return ReloadResult(False, error)

    def _restart_notes(self, generation: Generation) -> list[str]:
        new, current = generation.settings, self._generation.settings
        notes = [
            f"{name} changed: restart to apply it"
            for name in _RESTART_ONLY
            if getattr(new, name) != getattr(current, name)
        ]
        if _tls(generation) != _tls(self._generation):  # the listening socket keeps its own
            notes.append("tls_server_config changed: restart to apply it")
        return notes

    async def _open(self, generation: Generation) -> Running:
        sources = AsyncExitStack()
        try:
            ctx = await sources.enter_async_context(
                open_context(generation, self._health, clock=self._clock, memory=self._memory)
            )
        except BaseException:
            await sources.aclose()
            raise
        scheduler = CheckScheduler(
            generation.enabled, ctx, self._board, self._metrics.scheduler, lanes=self._lanes
        )
        return Running(generation, ctx, scheduler, sources)

    async def _retire(self, running: Running, grace: float) -> None:
        await running.scheduler.stop(grace)
        await running.sources.aclose()

    async def debug_run(self, name: str) -> DebugRun:
        """Run one check now with the daemon's sources and trace it; never recorded. One at a
        time: everything is decided once the lock is held, in the generation then in force
        (a reload may have come while the request waited)."""
        if not self._generation.settings.debug_runs:
            return DebugRun(refused=Refusal.DISABLED)
        async with self._debug_lock:
            generation, running = self._generation, self._running
            settings, check = generation.settings, generation.check(name)
            if not settings.debug_runs:
                return DebugRun(refused=Refusal.DISABLED)
            if check is None:
                return DebugRun(refused=Refusal.UNKNOWN_CHECK)
            last = self._debug_last.get(name)
            if last is not None:
                wait = settings.debug_run_min_interval_seconds - (self._monotonic() - last)
                if wait > 0:
                    return DebugRun(refused=Refusal.TOO_SOON, retry_after=wait)
            if self._stopping:
                return DebugRun(refused=Refusal.STOPPING)
            if running is None:
                return DebugRun(refused=Refusal.NOT_OPEN)
            with capture() as events:
                # In the schedule's sources and the check's lane: a reload's retirement waits
                # for it before closing them, the exit drops it.
                outcome = await running.scheduler.run_now(check)
            if isinstance(outcome, Refused):
                refusal = _NOT_RUN[outcome.why]
                return DebugRun(refused=refusal, retry_after=outcome.retry_after)
            self._debug_last[name] = self._monotonic()  # only a run that read counts
        return DebugRun(outcome=outcome, trace=tuple(events))


_NOT_RUN = {NotRun.BUSY: Refusal.BUSY, NotRun.DUE: Refusal.DUE, NotRun.STOPPING: Refusal.STOPPING}


def _tls(generation: Generation) -> object:
    return generation.web.tls_server_config if generation.web is not None else None
