"""Wiring: a generation → board, metrics, runtime (sources + scheduler) and web app; lifecycles.

build_exporter   the parts, wired; the runtime starts and stops with the aiohttp app
run_daemon       serve until SIGTERM/SIGINT, reload on SIGHUP; the exit code (`run`, `demo`)
run_once         every check once, outside the daemon (`check`)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Check, Outcome
from quantops_exporter.exposure import log_exposure
from quantops_exporter.generation import Clock, Generation, open_context
from quantops_exporter.metrics import build_registry
from quantops_exporter.redact import redact
from quantops_exporter.runner import run_check
from quantops_exporter.runtime import Loader, Runtime
from quantops_exporter.server import (
    AcceptErrors,
    Connections,
    FdLimit,
    LimitedSite,
    ServerLimits,
    connection_cap,
    raise_fd_limit,
    server_metrics,
)
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.web import build_web_app
from quantops_exporter.webconfig import certificate_reloader
from quantops_exporter.worker import share_the_interpreter

log = structlog.get_logger("quantops_exporter.app")
EXIT_OK, EXIT_FAILED = 0, 1
EXIT_CANNOT_LISTEN = EXIT_FAILED  # `run` and `demo`: the listen address is taken or refused


class CannotListen(Exception):
    """The listen address could not be bound (taken, not this host's, a privileged port)."""

    def __init__(self, address: str, error: OSError) -> None:
        self.reason = os.strerror(error.errno) if error.errno else str(error)
        super().__init__(f"cannot listen on {address}: {self.reason}")
        self.address, self.error = address, error


@dataclass(frozen=True, slots=True)
class Exporter:
    """The daemon's parts; `app` runs them under aiohttp's lifecycle."""

    board: Board
    health: DependencyHealth
    registry: CollectorRegistry
    runtime: Runtime
    app: web.Application


def build_exporter(
    generation: Generation, *, loader: Loader | None = None, clock: Clock = time.time
) -> Exporter:
    """Assemble the daemon; the scheduler and sources start with the aiohttp app.

    `loader` builds the next generation on SIGHUP or POST /-/reload (default: the same one).
    """
    board = Board(generation.catalog)
    health = DependencyHealth()
    runtime: Runtime
    registry, metrics = build_registry(
        board,
        health,
        generation.catalog,
        lambda: runtime.generation.thresholds,
        lambda: runtime.generation.calendar,
        clock,
        created=generation.settings.created_series,  # read at start-up: a reload keeps it
    )
    runtime = Runtime(
        generation, board=board, health=health, metrics=metrics, loader=loader, clock=clock
    )
    app = build_web_app(runtime, registry, clock=clock)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        metrics.loop_lag.start()
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            metrics.loop_lag.stop()

    async def stop_checks(_app: web.Application) -> None:
        # On shutdown, before the server waits for the requests under way: a run on demand
        # hung on the stack is dropped (503) instead of holding up the exit for its timeout.
        await runtime.stop()

    app.on_shutdown.append(stop_checks)
    app.cleanup_ctx.append(lifecycle)  # stops again (nothing left) when shutdown never came
    return Exporter(board, health, registry, runtime, app)


async def run_daemon(
    generation: Generation,
    loader: Loader | None = None,
    *,
    listening: Callable[[], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads through `loader`. Returns the exit code.

    `listening` is told once the port is bound (the demo prints its banner then).
    """
    exporter = build_exporter(generation, loader=loader)
    # What is imported and built by now lives as long as the process (but the first
    # generation, if a reload replaces it: it then stays, once): out of the collector's sight,
    # a full collection no longer walks it. Those were 40 ms pauses at 1,000 instruments, once
    # or twice a minute, each landing in whatever check ran (benchmarks/README.md).
    gc.collect()
    gc.freeze()
    share_the_interpreter()  # renders and parses in the worker thread wait for the loop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[object]] = set()

    def on_hangup() -> None:
        task = asyncio.ensure_future(exporter.runtime.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    def on_stop() -> None:
        stop.set()
        # From now on a SIGHUP reloads nothing; ignored, not left to the default action that
        # asyncio restores when the loop closes (it killed the exiting process: exit 129).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop)
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await serve(exporter, stop, listening)
    except CannotListen as err:
        log.error(
            "cannot_listen",
            address=err.address,
            error=err.reason,
            hint="another process holds the port, or the address is not this host's: set "
            "--web.listen-address or QUANTOPS_LISTEN_ADDRESS",
        )
        return EXIT_CANNOT_LISTEN
    return EXIT_OK


async def serve(
    exporter: Exporter, stop: asyncio.Event, listening: Callable[[], None] | None = None
) -> None:
    """Serve the exporter until `stop` is set; the checks run on their schedule meanwhile.

    Raises CannotListen when the address cannot be bound, and only then: any other OSError is
    not a port problem and is not reported as one."""
    generation = exporter.runtime.generation
    settings = generation.settings
    limits = ServerLimits(
        header_timeout=settings.web_header_timeout_seconds,
        idle_timeout=settings.web_idle_timeout_seconds,
        max_connections=settings.web_max_connections,
    )
    fd_limit = raise_fd_limit()
    cap = connection_cap(limits.max_connections, fd_limit.soft)
    handler: dict[str, Any] = {"access_log": None, "keepalive_timeout": limits.idle_timeout}
    runner = web.AppRunner(exporter.app, handle_signals=False, **handler)
    await runner.setup()
    assert runner.server is not None  # set by setup()
    metrics = server_metrics(exporter.registry)
    connections = Connections(runner.server, limits, cap, metrics, **handler)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(AcceptErrors(metrics, connections, fd_limit, previous))
    listen = settings.listen
    try:
        site = LimitedSite(
            runner, listen.host or None, listen.port, connections, ssl_context=generation.server_tls
        )
        try:
            await site.start()
        except OSError as err:
            raise CannotListen(str(listen), err) from err
        log_limits(limits, fd_limit, cap)
        log.info(
            "listening",
            address=str(listen),
            valkey=redact(settings.valkey_url),
            api=redact(settings.sep_api_url),
            allocator=redact(settings.allocator_url),
            checks=[c.name for c in generation.enabled],
            market_hours=settings.market_hours.value,
        )
        log_exposure(generation)
        if listening is not None:
            listening()
        tls = generation.web.tls_server_config if generation.web is not None else None
        async with certificate_reloader(generation.server_tls, tls):
            await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
        loop.set_exception_handler(previous)


def log_limits(limits: ServerLimits, fd_limit: FdLimit, cap: int) -> None:
    """The HTTP server limits in force; a warning when the fd limit lowered the cap asked for."""
    fields = {
        "header_timeout_seconds": limits.header_timeout,
        "idle_timeout_seconds": limits.idle_timeout,
        "max_connections": cap,
        "fd_limit": fd_limit.soft,
        "fd_limit_at_start": fd_limit.before,
        "fd_hard_limit": fd_limit.hard,
    }
    log.info("http_limits", **fields)
    if limits.max_connections > cap:
        log.warning(
            "http_max_connections_lowered",
            requested=limits.max_connections,
            max_connections=cap,
            fd_limit=fd_limit.soft,
            hint=f"the fd limit leaves room for {cap} connections; raise LimitNOFILE",
        )


async def run_once(
    generation: Generation,
    *,
    only: frozenset[str] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    clock: Clock = time.time,
) -> list[tuple[Check, Outcome]]:
    """Run every enabled check (or those named) once, concurrently; (check, outcome) pairs in
    catalog order. `on_done` hears of each outcome as it finishes (a progress indicator)."""
    checks = [c for c in generation.enabled if only is None or c.name in only]

    async def one(check: Check) -> Outcome:
        outcome = await run_check(check, ctx)
        if on_done is not None:
            on_done(outcome)
        return outcome

    async with open_context(generation, DependencyHealth(), clock=clock) as ctx:
        outcomes = await asyncio.gather(*(one(check) for check in checks))
    return list(zip(checks, outcomes, strict=True))
