"""The check context for some settings: calendar, thresholds, and the opened read-only sources."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from quantops_exporter.checks.base import CheckContext, Source, Thresholds
from quantops_exporter.checks.catalog import build_catalog
from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.config import MarketHours, Settings
from quantops_exporter.market import AlwaysOpenCalendar, Calendar, FxCalendar
from quantops_exporter.sources import valkey
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.sources.http import HttpReader
from quantops_exporter.sources.valkey import ValkeyReader

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
