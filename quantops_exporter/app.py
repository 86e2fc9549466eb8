"""Wiring: settings → sources, catalog, board, metrics, scheduler and web app; their lifecycles."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Check, CheckContext, Outcome, Source, Thresholds
from quantops_exporter.checks.catalog import build_catalog
from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.config import MarketHours, Settings, mask_url
from quantops_exporter.market import AlwaysOpenCalendar, Calendar, FxCalendar
from quantops_exporter.metrics import build_registry
from quantops_exporter.runner import run_check
from quantops_exporter.scheduler import CheckScheduler
from quantops_exporter.sources import valkey
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.sources.http import HttpReader
from quantops_exporter.sources.valkey import ValkeyReader
from quantops_exporter.web import DebugRuns, build_web_app
from quantops_exporter.webconfig import (
    BasicAuth,
    WebConfig,
    build_ssl_context,
    certificate_reloader,
    headers_middleware,
)

log = structlog.get_logger("quantops_exporter.app")

Clock = Callable[[], float]


def calendar_for(settings: Settings) -> Calendar:
    """The market calendar QUANTOPS_MARKET_HOURS names."""
    return AlwaysOpenCalendar() if settings.market_hours is MarketHours.ALWAYS else FxCalendar()


def thresholds_for(settings: Settings) -> Thresholds:
    """The knobs the checks judge against."""
    return Thresholds(
        ws_max_age=settings.fresh_max_ws_age_sec,
        signal_max_age=settings.fresh_max_signal_age_sec,
        gates_blob_max_age=settings.gates_blob_max_age_sec,
        max_clock_skew=settings.max_clock_skew_seconds,
        manifold_ts_fields=settings.manifold_ts_fields,
        manifold_ttl=settings.manifold_ttl_seconds,
        signal_ts_source=settings.signal_ts_source.value,
        kill_switch_policy=settings.kill_switch_policy.value,
        min_eligible=settings.min_eligible,
        echo_min_repetitions=settings.echo_min_repetitions,
        echo_hazard_max=settings.echo_hazard_max,
        alloc_top_k=settings.alloc_top_k,
        alloc_interval=settings.alloc_interval_sec,
        allocator_max_age=settings.allocator_max_age_seconds,
        margin_hyst_high=settings.margin_hyst_high,
        pm_max_per_pos_pct=settings.pm_max_per_pos_pct,
        risk_alloc_target_pct=settings.risk_alloc_target_pct,
        max_spread_bps=settings.max_spread_bps,
        weights_scale=settings.allocation_weights_scale.value,
        candles_instrument=settings.candles_instrument,
        candles_limit=settings.candles_limit,
        candles_max_age=settings.candles_max_age_seconds,
        flat_grace=settings.flat_grace_seconds,
        expected_sessions=tuple(s.value for s in settings.expected_sessions),
    )


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def freshness_limits(t: Thresholds) -> dict[Source, float]:
    """Each freshness source's configured limit, exported for the staleness alert."""
    return {
        Source.WS_MANIFOLD: t.ws_max_age,
        Source.SIGNAL_INDEX: t.signal_max_age,
        Source.GATES_BLOB: t.gates_blob_max_age,
        Source.CANDLES: t.candles_max_age,
    }


@asynccontextmanager
async def open_context(
    settings: Settings,
    health: DependencyHealth,
    *,
    clock: Clock = time.time,
    memory: CheckMemory | None = None,
    calendar: Calendar | None = None,
) -> AsyncIterator[CheckContext]:
    """Open the read-only sources for `settings`; close them on exit."""
    catalog = build_catalog(settings.overrides())
    longest = max(check.timeout for check in catalog)
    reader = ValkeyReader(
        valkey.connect(
            settings.valkey_url,
            timeout=longest,
            username=settings.valkey_username,
            password=_reveal(settings.valkey_password),
            ca_file=_path(settings.valkey_ca_file),
            cert_file=_path(settings.valkey_cert_file),
            key_file=_path(settings.valkey_key_file),
        ),
        health,
    )
    headers = {"User-Agent": "quantops-exporter"}
    token = _reveal(settings.api_bearer_token)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    tls = (
        ssl.create_default_context(cafile=str(settings.api_ca_file))
        if settings.api_ca_file is not None
        else True
    )
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None),  # the runner bounds every run
        headers=headers,
        connector=aiohttp.TCPConnector(ssl=tls),
    )
    http = HttpReader(session, health, max_body_bytes=settings.http_max_body_bytes)
    try:
        yield CheckContext(
            valkey=reader,
            http=http,
            calendar=calendar or calendar_for(settings),
            clock=clock,
            instruments=settings.hotband_pairs,
            thresholds=thresholds_for(settings),
            api_url=settings.sep_api_url,
            allocator_url=settings.allocator_url,
            stack_metrics_url=settings.stack_metrics_url,
            memory=memory or CheckMemory(),
        )
    finally:
        await http.close()
        await reader.close()


@dataclass(frozen=True, slots=True)
class Exporter:
    """The daemon's parts, built from settings; `app` runs them under aiohttp's lifecycle."""

    settings: Settings
    checks: tuple[Check, ...]
    board: Board
    health: DependencyHealth
    registry: CollectorRegistry
    app: web.Application


def build_exporter(
    settings: Settings,
    *,
    clock: Clock = time.time,
    calendar: Calendar | None = None,
    web_config: WebConfig | None = None,
) -> Exporter:
    """Assemble the daemon; the scheduler and sources start with the aiohttp app."""
    checks = build_catalog(settings.overrides())
    board = Board(checks)
    health = DependencyHealth()
    registry, scheduler_metrics = build_registry(
        board, health, checks, freshness_limits(thresholds_for(settings))
    )
    calendar = calendar or calendar_for(settings)
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
        calendar=calendar,
        debug=debug,
        runbook_url=settings.runbook_url,
        clock=clock,
        middlewares=middlewares,
    )
    grace = max(check.timeout for check in checks)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        async with open_context(settings, health, clock=clock, calendar=calendar) as ctx:
            scheduler = CheckScheduler(checks, ctx, board, scheduler_metrics)
            scheduler.start()
            debug.ctx = ctx
            try:
                yield
            finally:
                debug.ctx = None
                await scheduler.stop(grace)

    app.cleanup_ctx.append(lifecycle)
    return Exporter(settings, checks, board, health, registry, app)


async def serve(
    settings: Settings, stop: asyncio.Event, web_config: WebConfig | None = None
) -> None:
    """Serve /metrics until `stop` is set; the checks run on their schedule meanwhile."""
    exporter = build_exporter(settings, web_config=web_config)
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
