"""Inbound security in the Prometheus exporter-toolkit `--web.config.file` format.

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version}
    basic_auth_users: {name: bcrypt-hash}
    http_server_config: {headers: {Name: value}}

so ops teams reuse the files they already have for node_exporter & co. Authentication applies
to every endpoint; certificates are re-read when their files change.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from quantops_exporter.basicauth import bcrypt_problem
from quantops_exporter.config import ConfigError

log = structlog.get_logger("quantops_exporter.webconfig")
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


class TLSServerConfig(BaseModel):
    """`tls_server_config`."""

    model_config = ConfigDict(extra="forbid")

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"

    @field_validator("client_auth_type")
    @classmethod
    def _client_auth(cls, value: str) -> str:
        if value not in _CLIENT_AUTH:
            raise ValueError(
                f"{value!r} is not supported: use NoClientCert, VerifyClientCertIfGiven or "
                "RequireAndVerifyClientCert (Python's ssl cannot request a certificate "
                "without verifying it)"
            )
        return value


class HTTPServerConfig(BaseModel):
    """`http_server_config` (only `headers` applies here)."""

    model_config = ConfigDict(extra="ignore")

    headers: dict[str, str] = Field(default_factory=dict)


class WebConfig(BaseModel):
    """The whole web configuration file."""

    model_config = ConfigDict(extra="forbid")

    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in value.items():
            problem = bcrypt_problem(hashed.get_secret_value())
            if problem is not None:  # a hash no password can match would lock the user out
                raise ValueError(f"the hash of {user!r}: {problem}")
        return value


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web config file; ConfigError names the field and the fix."""
    where = f"web config {path}"
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{where}: cannot read it ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML ({err})") from err
    try:
        config = WebConfig.model_validate(document)
    except ValidationError as err:
        lines = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
        ]
        raise ConfigError(f"{where}:\n  " + "\n  ".join(lines)) from err
    tls = config.tls_server_config
    if tls is not None:
        base = path.parent
        for name in ("cert_file", "key_file", "client_ca_file"):
            file = getattr(tls, name)
            if file is not None and not file.is_absolute():
                setattr(tls, name, base / file)  # relative to the config file, as the toolkit
        for name in ("cert_file", "key_file", "client_ca_file"):
            file = getattr(tls, name)
            if file is not None and not file.is_file():
                raise ConfigError(f"{where}: tls_server_config.{name}: no such file {file}")
        if tls.client_auth_type != "NoClientCert" and tls.client_ca_file is None:
            raise ConfigError(
                f"{where}: tls_server_config.client_ca_file is required when "
                f"client_auth_type is {tls.client_auth_type}"
            )
        build_ssl_context(tls)  # fail now, at start-up or reload, not at the first handshake
    return config


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context for `tls`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=tls.client_ca_file)
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"tls_server_config: cannot load the certificate or key: {err}") from err
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return context


async def reload_certificates(
    context: ssl.SSLContext, tls: TLSServerConfig, every: float = 10.0
) -> None:
    """Re-read the certificate and key when their files change (new handshakes use them)."""

    def stamp() -> tuple[float, float]:
        return tls.cert_file.stat().st_mtime, tls.key_file.stat().st_mtime

    seen = stamp()
    while True:
        await asyncio.sleep(every)
        try:
            now = stamp()
            if now != seen:
                context.load_cert_chain(tls.cert_file, tls.key_file)
                seen = now
                log.info("tls_certificate_reloaded", cert_file=str(tls.cert_file))
        except (OSError, ssl.SSLError) as err:
            # A half-written pair is retried at the next tick; the old certificate stays.
            log.warning("tls_certificate_reload_failed", error=str(err))


@contextlib.asynccontextmanager
async def certificate_reloader(
    context: ssl.SSLContext | None, tls: TLSServerConfig | None, every: float = 10.0
) -> AsyncIterator[None]:
    """Run `reload_certificates` for the block (nothing without TLS)."""
    if context is None or tls is None:
        yield
        return
    task = asyncio.create_task(reload_certificates(context, tls, every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
