"""Settings: the stack's own knobs by their stack names, and the exporter's QUANTOPS_* settings.

Read once per configuration generation by the CLI (environment, then `--env-file`, e.g. the stack's
`.env.hotband`) and passed down as plain values; nothing else in the package reads the environment.
The knobs the checks judge against are declared once, in `checks.thresholds.Thresholds`, which
`Settings` inherits.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import SplitResult, urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    Field,
    NonNegativeFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from quantops_exporter import files, variables
from quantops_exporter.checks.catalog import (
    CHECK_NAMES,
    DEFAULT_RUNBOOK_URL,
    CheckOverride,
    build_catalog,
)
from quantops_exporter.checks.thresholds import INSTRUMENT, Thresholds, split_csv
from quantops_exporter.market import DEFAULT_CLOSURES, Closure, MarketHours
from quantops_exporter.problems import PREFIX, closest, problems, show
from quantops_exporter.redact import redact
from quantops_exporter.urls import endpoint

DEFAULT_PAIRS = (
    "EUR_USD",
    "USD_JPY",
    "GBP_USD",
    "EUR_JPY",
    "USD_CAD",
    "NZD_USD",
    "AUD_USD",
    "USD_CHF",
)
CHECKS_ENV = variables.CHECKS_ENV
# The --env-file's variables, read once by load_settings (bounded, off the loop) and handed to
# the settings source here, so the file is never opened a second time by path.
_ENV_FILE: ContextVar[Mapping[str, str | None] | None] = ContextVar("env_file", default=None)
_ENV_FILE_FIX = (
    "give the path of a dotenv file of VARIABLE=value lines, e.g. --env-file /opt/sep/.env.hotband"
)


class LogFormat(StrEnum):
    """How log events are written."""

    JSON = "json"
    LOGFMT = "logfmt"  # key=value lines, as Prometheus and its exporters write
    CONSOLE = "console"


class LogLevel(StrEnum):
    """The lowest level that is logged."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ListenAddress(BaseModel):
    """A parsed `host:port`; an empty host means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen_address(value: str) -> ListenAddress:
    """Parse `:9110`, `127.0.0.1:9110` or `[::1]:9110`."""
    match = re.fullmatch(
        r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})", value.strip()
    )
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise ValueError(
            "expected host:port with a port from 1 to 65535, e.g. :9110, "
            "127.0.0.1:9110 or [::1]:9110"
        )
    return ListenAddress(host=match["v6"] or match["host"] or "", port=int(match["port"]))


def parse_telemetry_path(value: str) -> str:
    """`/metrics` or another path of its own (not one the exporter serves otherwise)."""
    path = value.strip()
    ours = path in ("/", "/-/healthy", "/-/ready", "/-/reload") or path.startswith("/api/")
    if not path.startswith("/") or ours or any(c in path for c in "?#{} "):
        raise ValueError(
            "expected a path of its own, starting with /, e.g. /metrics (not /, /-/... or "
            "/api/..., which the exporter serves)"
        )
    return path


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL, e.g. http://localhost:8000")
    _port(parts)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def _port(parts: SplitResult) -> None:
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None


class Settings(BaseSettings, Thresholds):
    """Every setting, validated; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
        frozen=True,
    )

    # Where the stack is (sep-stack-contract.md §2, §4).
    valkey_url: str = Field("redis://localhost:6379/0", validation_alias="VALKEY_URL")
    sep_api_url: str = Field("http://localhost:8000", validation_alias="SEP_API_URL")
    allocator_url: str = Field("http://localhost:8100", validation_alias="ALLOCATOR_URL")
    sep_metrics_url: str | None = Field(None, validation_alias="SEP_METRICS_URL")
    hotband_pairs: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_PAIRS, validation_alias="HOTBAND_PAIRS"
    )

    # The exporter's own settings.
    listen_address: str = Field(":9110", validation_alias="QUANTOPS_LISTEN_ADDRESS")
    # HTTP server limits (server.py): a client must finish its request headers (and the TLS
    # handshake) in time; idle keep-alive connections are closed; 0 connections = derived from
    # the fd limit (min(1000, soft RLIMIT_NOFILE - 512), after raising it to the hard limit).
    web_header_timeout_seconds: float = Field(
        10.0, gt=0, le=60, validation_alias="QUANTOPS_WEB_HEADER_TIMEOUT_SECONDS"
    )
    web_idle_timeout_seconds: float = Field(
        120.0, gt=0, validation_alias="QUANTOPS_WEB_IDLE_TIMEOUT_SECONDS"
    )
    web_max_connections: int = Field(0, ge=0, validation_alias="QUANTOPS_WEB_MAX_CONNECTIONS")
    # Where the metrics are served (--web.telemetry-path, as the Prometheus exporters).
    web_telemetry_path: str = Field("/metrics", validation_alias="QUANTOPS_WEB_TELEMETRY_PATH")
    # The `_created` series of counters and histograms: off, as most exporters keep them (they
    # double what a text scrape carries and Prometheus ingests them only when asked to).
    created_series: bool = Field(False, validation_alias="QUANTOPS_CREATED_SERIES")
    log_format: LogFormat = Field(LogFormat.JSON, validation_alias="QUANTOPS_LOG_FORMAT")
    log_level: LogLevel = Field(LogLevel.INFO, validation_alias="QUANTOPS_LOG_LEVEL")
    market_hours: MarketHours = Field(MarketHours.FX, validation_alias="QUANTOPS_MARKET_HOURS")
    market_closures: Annotated[tuple[Closure, ...], NoDecode] = Field(
        tuple(Closure.parse(text) for text in DEFAULT_CLOSURES),
        validation_alias="QUANTOPS_MARKET_CLOSURES",
    )
    debug_runs: bool = Field(False, validation_alias="QUANTOPS_DEBUG_RUNS")
    debug_run_min_interval_seconds: NonNegativeFloat = Field(
        5.0, validation_alias="QUANTOPS_DEBUG_RUN_MIN_INTERVAL_SECONDS"
    )
    runbook_url: str = Field(DEFAULT_RUNBOOK_URL, validation_alias="QUANTOPS_RUNBOOK_URL")
    # Settings a deployment must give explicitly (a default would silently point at
    # localhost): the Kubernetes, compose and systemd examples set VALKEY_URL,SEP_API_URL,...
    required: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias="QUANTOPS_REQUIRE")
    # /-/healthy and /-/ready answer without credentials: probes (kubelet, Docker) cannot
    # send a password without writing it into a manifest; they reveal only up/ready.
    web_probes_need_auth: bool = Field(False, validation_alias="QUANTOPS_WEB_PROBES_NEED_AUTH")
    # POST/PUT /-/reload, off by default as in Prometheus (SIGHUP always reloads).
    web_enable_lifecycle: bool = Field(False, validation_alias="QUANTOPS_WEB_ENABLE_LIFECYCLE")
    reload_min_interval_seconds: NonNegativeFloat = Field(
        1.0, validation_alias="QUANTOPS_RELOAD_MIN_INTERVAL_SECONDS"
    )
    web_config_file: Path | None = Field(None, validation_alias="QUANTOPS_WEB_CONFIG_FILE")
    checks: dict[str, CheckOverride] = Field(default_factory=dict, validation_alias=CHECKS_ENV)

    # Outbound secrets and TLS. Secrets are SecretStr: never logged, masked by check-config;
    # the *_FILE variants are read when the configuration is built (generation.py).
    valkey_username: str | None = Field(None, validation_alias="VALKEY_USERNAME")
    valkey_password: SecretStr | None = Field(None, validation_alias="VALKEY_PASSWORD")
    valkey_password_file: Path | None = Field(None, validation_alias="VALKEY_PASSWORD_FILE")
    valkey_ca_file: Path | None = Field(None, validation_alias="QUANTOPS_VALKEY_CA_FILE")
    valkey_cert_file: Path | None = Field(None, validation_alias="QUANTOPS_VALKEY_CERT_FILE")
    valkey_key_file: Path | None = Field(None, validation_alias="QUANTOPS_VALKEY_KEY_FILE")
    api_bearer_token: SecretStr | None = Field(None, validation_alias="API_BEARER_TOKEN")
    api_bearer_token_file: Path | None = Field(None, validation_alias="API_BEARER_TOKEN_FILE")
    api_ca_file: Path | None = Field(None, validation_alias="QUANTOPS_API_CA_FILE")
    http_max_body_bytes: PositiveInt = Field(
        4 * 1024 * 1024, validation_alias="QUANTOPS_HTTP_MAX_BODY_BYTES"
    )
    valkey_max_value_bytes: PositiveInt = Field(
        1024 * 1024, validation_alias="QUANTOPS_VALKEY_MAX_VALUE_BYTES"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment over the --env-file, whose text load_settings already read."""
        return init_settings, env_settings, _EnvFileText(settings_cls), file_secret_settings

    @field_validator("log_format", "log_level", "market_hours", mode="before")
    @classmethod
    def _lower_enums(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("hotband_pairs", mode="before")
    @classmethod
    def _pairs_csv(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("market_closures", mode="before")
    @classmethod
    def _closures(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Closure.parse(item) for item in value.split(",") if item.strip())
        return value

    @field_validator("required", mode="before")
    @classmethod
    def _required_csv(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("required")
    @classmethod
    def _known_required(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(name.upper() for name in value)
        known = {str(f.validation_alias).upper() for f in cls.model_fields.values()}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise problems(
                f"QUANTOPS_REQUIRE names {name}, which is not a setting: "
                + (
                    f"did you mean {match}?"
                    if (match := closest(name, known))
                    else variables.SEE_SETTINGS
                )
                for name in unknown
            )
        return names

    @field_validator("hotband_pairs")
    @classmethod
    def _instruments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        pairs = tuple(item.upper() for item in value)
        bad = [item for item in pairs if not INSTRUMENT.match(item)]
        if bad:
            raise ValueError(f"{', '.join(bad)} is not an instrument like EUR_USD")
        if not pairs:
            raise ValueError("at least one instrument is needed, e.g. EUR_USD,USD_JPY")
        twice = sorted({item for item in pairs if pairs.count(item) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice: list each instrument once")
        return pairs

    @field_validator("sep_metrics_url")
    @classmethod
    def _metrics_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _http_url(value)

    @field_validator("sep_api_url", "allocator_url", "runbook_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("valkey_url")
    @classmethod
    def _valkey(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("redis", "rediss", "unix", "valkey", "valkeys"):
            raise ValueError(
                "expected redis://[user:password@]host:port/db, rediss://… or unix://path"
            )
        _port(parts)
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("no host: expected redis://[user:password@]host:port/db")
        db = parts.path.strip("/")
        if parts.scheme != "unix" and db and not db.isdigit():
            raise ValueError(f"the database {db!r} is not a number: redis://host:port/0")
        if parts.scheme.startswith("valkey"):
            # redis-py speaks the same protocol; accept the Valkey spelling too.
            return urlunsplit(parts._replace(scheme=parts.scheme.replace("valkey", "redis")))
        return value.strip()

    @field_validator("web_telemetry_path")
    @classmethod
    def _telemetry_path(cls, value: str) -> str:
        return parse_telemetry_path(value)

    @field_validator("listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value.strip()

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: dict[str, CheckOverride]) -> dict[str, CheckOverride]:
        unknown = sorted(set(value) - CHECK_NAMES)
        if unknown:
            raise ValueError(
                f"unknown check {', '.join(unknown)}; known checks: "
                f"{', '.join(sorted(CHECK_NAMES))}"
            )
        lines = [
            variables.overlap(c, value.get(c.name, CheckOverride())) for c in build_catalog(value)
        ]
        if any(lines):
            raise problems(line for line in lines if line)
        return value

    @model_validator(mode="after")
    def _files_and_tls(self) -> Settings:
        for alias, path in (
            ("VALKEY_PASSWORD_FILE", self.valkey_password_file),
            ("API_BEARER_TOKEN_FILE", self.api_bearer_token_file),
            ("QUANTOPS_VALKEY_CA_FILE", self.valkey_ca_file),
            ("QUANTOPS_VALKEY_CERT_FILE", self.valkey_cert_file),
            ("QUANTOPS_VALKEY_KEY_FILE", self.valkey_key_file),
            ("QUANTOPS_API_CA_FILE", self.api_ca_file),
        ):
            if path is not None:
                try:
                    files.check_regular(path, limit=files.MAX_PEM_BYTES)
                except files.FileError as err:
                    raise ValueError(f"{alias}={path}: {err}") from None
        tls_files = (self.valkey_ca_file, self.valkey_cert_file, self.valkey_key_file)
        if any(tls_files) and not self.valkey_url.startswith("rediss://"):
            raise ValueError("QUANTOPS_VALKEY_*_FILE need a TLS URL: VALKEY_URL=rediss://...")
        if (self.valkey_cert_file is None) != (self.valkey_key_file is None):
            raise ValueError("QUANTOPS_VALKEY_CERT_FILE and QUANTOPS_VALKEY_KEY_FILE go together")
        token = self.api_bearer_token is not None or self.api_bearer_token_file is not None
        for alias, url in (
            ("SEP_API_URL", self.sep_api_url),
            ("ALLOCATOR_URL", self.allocator_url),
            ("SEP_METRICS_URL", self.sep_metrics_url),
        ):
            if token and url is not None and urlsplit(url).username is not None:
                raise ValueError(
                    f"{alias} carries user:password and API_BEARER_TOKEN is set: an HTTP request "
                    "has one Authorization header; use one or the other"
                )
        return self

    @property
    def thresholds(self) -> Thresholds:
        """Only the knobs the checks judge against."""
        return Thresholds.model_construct(
            **{name: getattr(self, name) for name in Thresholds.model_fields}
        )

    @property
    def stack_metrics_url(self) -> str:
        """SEP_METRICS_URL, defaulting to the backend's own /metrics."""
        return self.sep_metrics_url or endpoint(self.sep_api_url, "/metrics")

    @property
    def listen(self) -> ListenAddress:
        """The parsed listen address."""
        return parse_listen_address(self.listen_address)

    def masked(self) -> dict[str, str]:
        """The effective settings by environment variable name (sorted), as an environment file
        would spell them (`false`, `3`, `0.3`), secrets masked."""
        shown: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            alias = str(field.validation_alias)
            value = getattr(self, name)
            if name == "checks":
                for check, override in value.items():
                    for key, item in override.model_dump(exclude_none=True).items():
                        shown[f"{CHECKS_ENV}__{check}__{key.upper()}"] = show(item)
                continue
            if name == "sep_metrics_url":
                value = self.stack_metrics_url
            if value is None:
                continue
            shown[alias] = redact(show(value))
        return dict(sorted(shown.items()))


class ConfigError(Exception):
    """Settings that do not validate; the message names each variable and the fix, under the
    one prefix every configuration problem has (a line per problem)."""

    def __init__(self, message: str) -> None:
        if not message.startswith(PREFIX):
            message = f"{PREFIX}\n  " + message.replace("\n", "\n  ")
        super().__init__(message)

    @property
    def problem(self) -> str:
        """The message without its prefix, for a caller that names where it happened."""
        return str(self).removeprefix(f"{PREFIX}\n  ")


def read_config_file(
    path: Path, name: str, *, limit: int = files.MAX_CONFIG_BYTES, fix: str | None = None
) -> str:
    """The UTF-8 text of a configuration file (files.read_text); ConfigError prefixed `name`,
    with `fix` instead of the generic one when the file is not a regular file."""
    try:
        return files.read_text(path, limit=limit)
    except files.FileError as err:
        raise ConfigError(f"{name}: {err.worded(fix)}") from None


def check_config_file(path: Path, name: str, *, limit: int = files.MAX_PEM_BYTES) -> None:
    """files.check_regular for a file a library opens itself; ConfigError prefixed `name`."""
    try:
        files.check_regular(path, limit=limit)
    except files.FileError as err:
        raise ConfigError(f"{name}: {err}") from None


class _EnvFileText(DotEnvSettingsSource):
    """The dotenv source over the variables load_settings read (never the file by its path)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_file=None)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        variables = _ENV_FILE.get() or {}
        return parse_env_vars(
            variables, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def load_settings(env_file: Path | None = None) -> Settings:
    """Read the environment (and `env_file`, once: a regular file, bounded in size and time);
    raise ConfigError naming every problem at once: misspelled names, bad values, settings
    QUANTOPS_REQUIRE needs."""
    lines = variables.unknown(os.environ, "the environment", Settings.model_fields)
    given = {name.upper() for name in os.environ}
    from_file: Mapping[str, str | None] = {}
    if env_file is not None:
        text = read_config_file(env_file, f"--env-file {env_file}", fix=_ENV_FILE_FIX)
        from_file = dotenv_values(stream=io.StringIO(text))
        lines += variables.unknown(from_file, f"--env-file {env_file}", Settings.model_fields)
        given |= {name.upper() for name, value in from_file.items() if value is not None}
    settings = None
    token = _ENV_FILE.set(from_file)
    try:
        settings = Settings()
    except ValidationError as err:
        described = variables.describe_settings(err, Settings.model_fields)
        lines += [line for line in described if not _reported(line, lines)]
    finally:
        _ENV_FILE.reset(token)
    if settings is not None:
        missing = [name for name in settings.required if name not in given]
        if missing:
            them = "them" if len(missing) > 1 else "it"
            lines.append(
                f"{_and(missing)} {'are' if len(missing) > 1 else 'is'} not set, and "
                f"QUANTOPS_REQUIRE says this deployment needs {them}: set {them} (the default "
                "would point at localhost), e.g. "
                + " ".join(f"{name}={_EXAMPLES.get(name, '...')}" for name in missing)
            )
    if lines:
        raise ConfigError(f"{PREFIX}\n  " + "\n  ".join(lines))
    assert settings is not None  # no problem reported: it validated
    return settings


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _reported(line: str, lines: list[str]) -> bool:
    """Whether the variable `line` is about was already reported as not a setting."""
    variable = line.partition("=")[0].partition(":")[0]
    return any(other.startswith(f"{variable} (in ") for other in lines)


_EXAMPLES = {
    "VALKEY_URL": "redis://sep-valkey:6379/0",
    "SEP_API_URL": "http://sep-backend:8000",
    "ALLOCATOR_URL": "http://sep-allocator-lite:8100",
}


def known_variables() -> dict[str, str]:
    """Every QUANTOPS_* variable a setting reads (the per-check ones spelled out), by its
    upper-case form (names are case-insensitive)."""
    return variables.known(Settings.model_fields)


def describe_validation_error(err: ValidationError) -> str:
    """Every problem of `err`, one line each, under the one prefix."""
    return f"{PREFIX}\n  " + "\n  ".join(variables.describe_settings(err, Settings.model_fields))
