"""A configuration generation: everything one configuration decides, built whole by one function.

    settings (env, --env-file) ─┐
                                ├─ build_generation ─► Generation (frozen)
    web config file ────────────┘     catalog with overrides, thresholds, calendar, inbound
                                      policy (users, headers, TLS), outbound credentials and TLS

`run`, `check`, `check-config` and every reload build one the same way, so `check-config`
cannot call valid what `run` would refuse. Files (secrets, certificates) are read here, once.
`open_context` opens a generation's read-only sources for the checks.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from quantops_exporter.basicauth import BasicAuth
from quantops_exporter.checks.base import Check, CheckContext
from quantops_exporter.checks.catalog import build_catalog
from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.config import (
    ConfigError,
    LogFormat,
    LogLevel,
    Settings,
    check_config_file,
    load_settings,
    parse_listen_address,
    parse_telemetry_path,
    read_config_file,
)
from quantops_exporter.files import MAX_PEM_BYTES
from quantops_exporter.market import Calendar, calendar_for
from quantops_exporter.problems import quoted
from quantops_exporter.sources import valkey
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.sources.http import HttpReader
from quantops_exporter.sources.stack_metrics import StackMetricsReader
from quantops_exporter.sources.valkey import ValkeyReader
from quantops_exporter.webconfig import WebConfig, build_ssl_context, load_web_config

Clock = Callable[[], float]
MAX_SECRET_BYTES = 64 * 1024  # a password or a token, never more


@dataclass(frozen=True, slots=True)
class Outbound:
    """How the daemon authenticates to the stack: secrets read from their files, TLS loaded."""

    valkey_password: SecretStr | None
    api_token: SecretStr | None
    api_tls: ssl.SSLContext | None  # None: the system's CAs


@dataclass(frozen=True, slots=True)
class Generation:
    """One configuration, whole: what runs, how it is judged, who may see it, how to reach the
    stack. Swapped in one assignment on reload; every reader goes through that one reference."""

    settings: Settings
    catalog: tuple[Check, ...]
    thresholds: Thresholds
    calendar: Calendar
    outbound: Outbound
    web: WebConfig | None = None
    auth: BasicAuth | None = None
    server_tls: ssl.SSLContext | None = None

    @property
    def enabled(self) -> tuple[Check, ...]:
        """The checks that run, in catalog order."""
        return tuple(check for check in self.catalog if check.enabled)

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers the web config asks for."""
        return self.web.http_server_config.headers if self.web is not None else {}

    def check(self, name: str) -> Check | None:
        """The check called `name`, if the catalog has one."""
        return next((check for check in self.catalog if check.name == name), None)


def build_generation(
    settings: Settings, web: WebConfig | None = None, *, calendar: Calendar | None = None
) -> Generation:
    """Build everything `settings` and `web` decide; ConfigError names the variable and the fix.

    `calendar` replaces the one QUANTOPS_MARKET_HOURS names (tests open and close the market).
    """
    catalog = build_catalog(settings.checks)  # timeouts below intervals: Settings saw to it
    users = web.basic_auth_users if web is not None else {}
    tls = web.tls_server_config if web is not None else None
    return Generation(
        settings=settings,
        catalog=catalog,
        thresholds=settings.thresholds,
        calendar=calendar or calendar_for(settings.market_hours, settings.market_closures),
        outbound=_outbound(settings),
        web=web,
        auth=BasicAuth(users) if users else None,
        server_tls=build_ssl_context(tls) if tls is not None else None,
    )


def load_generation(
    env_file: Path | None = None,
    web_config_file: Path | None = None,
    *,
    enable_lifecycle: bool = False,
    listen_address: str | None = None,
    telemetry_path: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
) -> Generation:
    """Read the environment, `env_file` and the web config, and build a generation from them.

    The flags win over the environment, as in the Prometheus exporters: `listen_address`
    (--web.listen-address) over QUANTOPS_LISTEN_ADDRESS, `telemetry_path`
    (--web.telemetry-path) over QUANTOPS_WEB_TELEMETRY_PATH, `web_config_file`
    (--web.config.file) over QUANTOPS_WEB_CONFIG_FILE, `enable_lifecycle`
    (--web.enable-lifecycle) over QUANTOPS_WEB_ENABLE_LIFECYCLE, `log_level` and `log_format`
    (--log.level, --log.format) over QUANTOPS_LOG_LEVEL and QUANTOPS_LOG_FORMAT.
    """
    settings = load_settings(env_file)
    for flag, value, parse in (
        ("--web.listen-address", listen_address, parse_listen_address),
        ("--web.telemetry-path", telemetry_path, parse_telemetry_path),
    ):
        if value is not None:
            try:
                parse(value)
            except ValueError as err:
                raise ConfigError(f"{flag} {quoted(value)}: {err}") from err
    given = {
        "listen_address": listen_address.strip() if listen_address is not None else None,
        "web_telemetry_path": telemetry_path.strip() if telemetry_path is not None else None,
        "web_config_file": web_config_file,
        "web_enable_lifecycle": True if enable_lifecycle else None,
        "log_level": LogLevel(log_level) if log_level is not None else None,
        "log_format": LogFormat(log_format) if log_format is not None else None,
    }
    update = {name: value for name, value in given.items() if value is not None}
    if update:
        settings = settings.model_copy(update=update)
    path = settings.web_config_file
    return build_generation(settings, load_web_config(path) if path is not None else None)


def _outbound(settings: Settings) -> Outbound:
    valkey_password = _secret("VALKEY_PASSWORD", settings.valkey_password_file)
    api_token = _secret("API_BEARER_TOKEN", settings.api_bearer_token_file)
    if settings.valkey_ca_file is not None or settings.valkey_cert_file is not None:
        _client_tls(  # redis-py loads these itself when it connects: fail here, not then
            "QUANTOPS_VALKEY",
            settings.valkey_ca_file,
            settings.valkey_cert_file,
            settings.valkey_key_file,
        )
    return Outbound(
        valkey_password=valkey_password or settings.valkey_password,
        api_token=api_token or settings.api_bearer_token,
        api_tls=(
            _client_tls("QUANTOPS_API", settings.api_ca_file)
            if settings.api_ca_file is not None
            else None
        ),
    )


def _secret(alias: str, path: Path | None) -> SecretStr | None:
    if path is None:
        return None
    secret = read_config_file(path, f"{alias}_FILE={path}", limit=MAX_SECRET_BYTES).strip()
    if not secret:
        raise ConfigError(f"{alias}_FILE={path} is empty")
    return SecretStr(secret)


def _client_tls(
    prefix: str, ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    bundle = None
    if ca is not None:
        bundle = read_config_file(ca, f"{prefix}_CA_FILE={ca}", limit=MAX_PEM_BYTES)
    try:
        if bundle is not None and not bundle.strip():  # cadata="" would trust the system's CAs
            raise ssl.SSLError("the file is empty")
        # Only this CA when one is given, as with any client's --cacert.
        context = ssl.create_default_context(cadata=bundle)
    except (ssl.SSLError, ValueError) as err:
        raise ConfigError(f"{prefix}_CA_FILE={ca}: not a PEM CA bundle ({err})") from err
    if cert is not None and key is not None:
        check_config_file(cert, f"{prefix}_CERT_FILE={cert}")
        check_config_file(key, f"{prefix}_KEY_FILE={key}")
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as err:
            raise ConfigError(
                f"{prefix}_CERT_FILE={cert} / {prefix}_KEY_FILE={key}: not a PEM certificate "
                f"and its key ({err})"
            ) from err
    return context


@asynccontextmanager
async def open_context(
    generation: Generation,
    health: DependencyHealth,
    *,
    clock: Clock = time.time,
    memory: CheckMemory | None = None,
) -> AsyncIterator[CheckContext]:
    """Open the read-only sources of `generation`; close them on exit."""
    settings, outbound = generation.settings, generation.outbound
    reader = ValkeyReader(
        valkey.connect(
            settings.valkey_url,
            timeout=max(check.timeout for check in generation.catalog),
            username=settings.valkey_username,
            password=_reveal(outbound.valkey_password),
            ca_file=_path(settings.valkey_ca_file),
            cert_file=_path(settings.valkey_cert_file),
            key_file=_path(settings.valkey_key_file),
        ),
        health,
        max_value_bytes=settings.valkey_max_value_bytes,
    )
    headers = {"User-Agent": "quantops-exporter"}
    if outbound.api_token is not None:
        headers["Authorization"] = f"Bearer {outbound.api_token.get_secret_value()}"
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None),  # the runner bounds every run
        headers=headers,
        connector=aiohttp.TCPConnector(ssl=outbound.api_tls or True),
    )
    http = HttpReader(session, health, max_body_bytes=settings.http_max_body_bytes)
    stack_metrics = StackMetricsReader(http, settings.stack_metrics_url)
    try:
        yield CheckContext(
            valkey=reader,
            http=http,
            stack_metrics=stack_metrics,
            calendar=generation.calendar,
            clock=clock,
            instruments=settings.hotband_pairs,
            thresholds=generation.thresholds,
            api_url=settings.sep_api_url,
            allocator_url=settings.allocator_url,
            memory=memory or CheckMemory(),
        )
    finally:
        await stack_metrics.close()
        await http.close()
        await reader.close()


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)
