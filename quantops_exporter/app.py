"""Wiring: a generation → board, metrics, runtime (sources + scheduler) and web app; lifecycles.

build_exporter   the parts, wired; the runtime starts and stops with the aiohttp app
run_daemon       serve until SIGTERM/SIGINT, reload on SIGHUP; the exit code (`run`, `demo`)
run_once         every check once, outside the daemon (`check`)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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

    app.cleanup_ctx.append(lifecycle)
    return Exporter(board, health, registry, runtime, app)


async def run_daemon(generation: Generation, loader: Loader | None = None) -> int:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads through `loader`. Returns the exit code."""
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

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await serve(exporter, stop)
    except OSError as err:
        log.error(
            "cannot_listen",
            address=generation.settings.listen_address,
            error=str(err),
            hint="another process holds the port; set QUANTOPS_LISTEN_ADDRESS",
        )
        return EXIT_FAILED
    return EXIT_OK


async def serve(exporter: Exporter, stop: asyncio.Event) -> None:
    """Serve the exporter until `stop` is set; the checks run on their schedule meanwhile."""
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
        await site.start()
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


def log_exposure(generation: Generation) -> None:
    """Say plainly who can reach what."""
    settings = generation.settings
    listen = settings.listen
    tls = generation.web.tls_server_config if generation.web is not None else None
    endpoints = ["/metrics", "/", "/api/v1/checks", "/-/healthy", "/-/ready"]
    if settings.debug_runs:
        endpoints.append("POST /api/v1/checks/{name}/run")
    if settings.web_enable_lifecycle:
        endpoints.append("POST /-/reload")
    exposure = {
        "scheme": "https" if tls else "http",
        "interfaces": listen.host or "all",
        "authentication": "basic" if generation.auth is not None else "none",
        "client_certificates": tls.client_auth_type if tls else "none",
        "endpoints": endpoints,
    }
    loopback = listen.host in ("127.0.0.1", "::1", "localhost")
    if tls is None and generation.auth is None and not loopback:
        log.warning(
            "exposed_without_tls_or_auth",
            **exposure,
            hint="anyone who reaches this port reads the board; set QUANTOPS_WEB_CONFIG_FILE "
            "(TLS, basic auth) or bind 127.0.0.1",
        )
    else:
        log.info("exposure", **exposure)


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
