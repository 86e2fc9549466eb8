"""Wiring: settings → sources, catalog, board, metrics, scheduler and web app; their lifecycles."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Check, CheckContext, Outcome
from quantops_exporter.checks.catalog import build_catalog
from quantops_exporter.config import Settings, mask_url
from quantops_exporter.context import (  # re-exported: callers import these from app
    Clock,
    calendar_for,
    freshness_limits,
    open_context,
    thresholds_for,
)
from quantops_exporter.market import Calendar
from quantops_exporter.metrics import build_registry
from quantops_exporter.runner import run_check
from quantops_exporter.runtime import Loader, Runtime
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.web import DebugRuns, Live, build_web_app
from quantops_exporter.webconfig import (
    BasicAuth,
    WebConfig,
    build_ssl_context,
    certificate_reloader,
    headers_middleware,
)

log = structlog.get_logger("quantops_exporter.app")


@dataclass(frozen=True, slots=True)
class Exporter:
    """The daemon's parts, built from settings; `app` runs them under aiohttp's lifecycle."""

    settings: Settings
    board: Board
    health: DependencyHealth
    registry: CollectorRegistry
    runtime: Runtime
    app: web.Application

    @property
    def checks(self) -> tuple[Check, ...]:
        """The catalog in force (it changes on reload)."""
        return self.runtime.checks


def build_exporter(
    settings: Settings,
    *,
    clock: Clock = time.time,
    calendar: Calendar | None = None,
    web_config: WebConfig | None = None,
    loader: Loader | None = None,
) -> Exporter:
    """Assemble the daemon; the scheduler and sources start with the aiohttp app.

    `loader` re-reads the settings on SIGHUP or POST /-/reload (default: nothing changes).
    """
    checks = build_catalog(settings.overrides())
    board = Board(checks)
    health = DependencyHealth()
    registry, metrics = build_registry(
        board, health, checks, freshness_limits(thresholds_for(settings))
    )
    live = Live(calendar or calendar_for(settings))
    debug = DebugRuns(
        checks, enabled=settings.debug_runs, min_interval=settings.debug_run_min_interval_seconds
    )
    middlewares = []
    if web_config is not None:
        if web_config.http_server_config.headers:
            middlewares.append(headers_middleware(web_config.http_server_config.headers))
        if web_config.basic_auth_users:
            middlewares.append(BasicAuth(web_config.basic_auth_users).middleware)
    app = build_web_app(
        board,
        registry,
        calendar=live.calendar,
        debug=debug,
        runbook_url=settings.runbook_url,
        clock=clock,
        middlewares=middlewares,
        live=live,
    )
    runtime = Runtime(
        settings,
        board=board,
        health=health,
        metrics=metrics,
        debug=debug,
        live=live,
        loader=loader,
        clock=clock,
        calendar=calendar,
    )
    live.reload = runtime.reload

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app.cleanup_ctx.append(lifecycle)
    return Exporter(settings, board, health, registry, runtime, app)


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    web_config: WebConfig | None = None,
    loader: Loader | None = None,
) -> None:
    """Serve /metrics until `stop` is set; the checks run on their schedule meanwhile.

    SIGHUP reloads the configuration through `loader`.
    """
    exporter = build_exporter(settings, web_config=web_config, loader=loader)
    reloads: set[asyncio.Task[tuple[bool, str]]] = set()

    def on_hangup() -> None:
        task = asyncio.ensure_future(exporter.runtime.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
    tls = web_config.tls_server_config if web_config else None
    context = build_ssl_context(tls) if tls else None
    runner = web.AppRunner(exporter.app, access_log=None, handle_signals=False)
    await runner.setup()
    listen = settings.listen
    try:
        site = web.TCPSite(runner, listen.host or None, listen.port, ssl_context=context)
        await site.start()
        log.info(
            "listening",
            address=str(listen),
            valkey=mask_url(settings.valkey_url),
            api=settings.sep_api_url,
            allocator=settings.allocator_url,
            checks=[c.name for c in exporter.checks if c.enabled],
            market_hours=settings.market_hours.value,
        )
        log_exposure(settings, web_config)
        async with certificate_reloader(context, tls):
            await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def log_exposure(settings: Settings, web_config: WebConfig | None) -> None:
    """Say plainly who can reach what."""
    listen = settings.listen
    tls = web_config.tls_server_config if web_config else None
    auth = web_config is not None and bool(web_config.basic_auth_users)
    endpoints = ["/metrics", "/", "/api/v1/checks", "/-/healthy", "/-/ready"]
    if settings.debug_runs:
        endpoints.append("POST /api/v1/checks/{name}/run")
    exposure = {
        "scheme": "https" if tls else "http",
        "interfaces": listen.host or "all",
        "authentication": "basic" if auth else "none",
        "client_certificates": tls.client_auth_type if tls else "none",
        "endpoints": endpoints,
    }
    if tls is None and not auth and listen.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "exposed_without_tls_or_auth",
            **exposure,
            hint="anyone who reaches this port reads the board; set QUANTOPS_WEB_CONFIG_FILE "
            "(TLS, basic auth) or bind 127.0.0.1",
        )
    else:
        log.info("exposure", **exposure)


def selected_checks(settings: Settings, only: frozenset[str] | None = None) -> list[Check]:
    """The enabled checks (optionally only those named), in catalog order."""
    return [
        c
        for c in build_catalog(settings.overrides())
        if c.enabled and (only is None or c.name in only)
    ]


async def run_once(
    settings: Settings,
    *,
    clock: Clock = time.time,
    only: frozenset[str] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[tuple[Check, Outcome]]:
    """Run every enabled check once, concurrently; return (check, outcome) in catalog order.

    `on_done` hears of each outcome as it finishes (the CLI's progress indicator).
    """
    checks = selected_checks(settings, only)

    async def one(check: Check, ctx: CheckContext) -> Outcome:
        outcome = await run_check(check, ctx)
        if on_done is not None:
            on_done(outcome)
        return outcome

    async with open_context(settings, DependencyHealth(), clock=clock) as ctx:
        outcomes = await asyncio.gather(*(one(check, ctx) for check in checks))
    return list(zip(checks, outcomes, strict=True))
