"""Inbound security in the Prometheus exporter-toolkit `--web.config.file` format.

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version}
    basic_auth_users: {name: bcrypt-hash}
    http_server_config: {headers: {Name: value}}

so ops teams reuse the files they already have for node_exporter & co. Authentication applies
to every endpoint; certificates are re-read when their files change.

A reload never lowers the protection silently (`weakened`): removing every user, TLS, or client
certificate verification takes writing so (`basic_auth_users: {}`, `tls_server_config: null`,
`client_auth_type: NoClientCert`); an empty file says nothing, so it is refused then.
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
from pydantic_core import ErrorDetails

from quantops_exporter import files
from quantops_exporter.basicauth import bcrypt_problem
from quantops_exporter.config import ConfigError, check_config_file, read_config_file
from quantops_exporter.problems import closest

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


_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {("tls_server_config",): TLSServerConfig}


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web config file; ConfigError names the field and the fix."""
    where = f"web config {path}"
    text = read_config_file(path, where)
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML ({err})") from err
    try:
        config = WebConfig.model_validate(document)
    except ValidationError as err:
        lines = [_problem(e) for e in err.errors()]
        raise ConfigError(f"{where}:\n  " + "\n  ".join(lines)) from err
    tls = config.tls_server_config
    if tls is not None:
        base = path.parent
        for name in ("cert_file", "key_file", "client_ca_file"):
            file = getattr(tls, name)
            if file is not None and not file.is_absolute():
                setattr(tls, name, base / file)  # relative to the config file, as the toolkit
        if tls.client_auth_type != "NoClientCert" and tls.client_ca_file is None:
            raise ConfigError(
                f"{where}: tls_server_config.client_ca_file is required when "
                f"client_auth_type is {tls.client_auth_type}"
            )
        try:
            build_ssl_context(tls)  # fail now, at start-up or reload, not at the first handshake
        except ConfigError as err:
            raise ConfigError(f"{where}: {err.problem}") from err
    return config


def _problem(error: ErrorDetails) -> str:
    """One line of a web config problem; a misspelled key names the key it most likely is."""
    where = ".".join(str(p) for p in error["loc"]) or "the file"
    if error["type"] == "missing":
        return f"{where}: missing; it is required here"
    if error["type"] == "literal_error":
        choices = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{where}: {error['input']} is not one of {choices.replace(' or ', ', ')}"
    if error["type"] != "extra_forbidden":
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    model = _SECTIONS.get(tuple(str(p) for p in error["loc"][:-1]), WebConfig)
    known = list(model.model_fields)
    match = closest(str(error["loc"][-1]), known)
    hint = f"did you mean {match}?" if match else f"the keys here are {', '.join(known)}"
    return f"{where}: not a key of the web config: {hint}"


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context for `tls` (every file checked to be a regular file first)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    check_config_file(tls.cert_file, f"tls_server_config.cert_file {tls.cert_file}")
    check_config_file(tls.key_file, f"tls_server_config.key_file {tls.key_file}")
    bundle = None
    if tls.client_ca_file is not None:
        name = f"tls_server_config.client_ca_file {tls.client_ca_file}"
        bundle = read_config_file(tls.client_ca_file, name, limit=files.MAX_PEM_BYTES)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if bundle is not None:
            context.load_verify_locations(cadata=bundle)
    except (ssl.SSLError, OSError, ValueError) as err:
        raise ConfigError(
            f"tls_server_config: cannot load the certificate, key or client CA: {err}"
        ) from err
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return context


_CLIENT_CHECKS = list(_CLIENT_AUTH)  # from the weakest to the strictest


def weakened(before: WebConfig | None, after: WebConfig | None) -> str | None:
    """Why `after` protects the endpoints less than `before` without saying so, or None.

    Lowering the protection takes writing it: `basic_auth_users: {}` to remove every user,
    `tls_server_config: null` to remove TLS, `client_auth_type: ...` to verify client
    certificates less. A file that sets nothing (empty, comments only) says nothing.
    """
    if before is None:
        return None
    said = after.model_fields_set if after is not None else set()
    lost = []
    no_users = not (after and after.basic_auth_users)
    if before.basic_auth_users and no_users and "basic_auth_users" not in said:
        lost.append(("every basic_auth_users user (authentication off)", "basic_auth_users: {}"))
    old_tls, new_tls = before.tls_server_config, after.tls_server_config if after else None
    if old_tls is not None and new_tls is None and "tls_server_config" not in said:
        lost.append(("tls_server_config (TLS off at the next restart)", "tls_server_config: null"))
    if old_tls is not None and new_tls is not None:
        old, new = old_tls.client_auth_type, new_tls.client_auth_type
        rank = _CLIENT_CHECKS.index
        if rank(new) < rank(old) and "client_auth_type" not in new_tls.model_fields_set:
            lost.append((f"client_auth_type {old} (now {new})", f"client_auth_type: {new}"))
    if not lost:
        return None
    if after is None:
        given = "no web config is given any more"
    elif not said:
        given = "the file sets nothing (empty, or comments only)"
    else:
        given = "the file leaves out what it had"
    removed = " and ".join(what for what, _ in lost)
    fixes = " and ".join(f"`{fix}`" for _, fix in lost)
    return (
        f"{given}: it would remove {removed}; refused, the previous protection stays. "
        f"To mean it, write {fixes}"
    )


async def reload_certificates(
    context: ssl.SSLContext, tls: TLSServerConfig, every: float = 10.0
) -> None:
    """Re-read the certificate and key when their files change (new handshakes use them).

    The files are stat-ed, checked to be regular and loaded into a scratch context off the
    loop, within a timeout; only a pair that loaded there is loaded into the serving context."""

    def trial() -> tuple[float, float]:
        for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            check_config_file(path, f"tls_server_config.{name} {path}")
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls.cert_file, tls.key_file)
        return tls.cert_file.stat().st_mtime, tls.key_file.stat().st_mtime

    seen: tuple[float, float] | None = None  # None after a failed tick: load at the next good one
    first = True
    while True:
        try:
            async with asyncio.timeout(2 * files.READ_TIMEOUT_SECONDS):
                now = await files.off_loop(trial, name="certificate reload")
            if not first and now != seen:
                context.load_cert_chain(tls.cert_file, tls.key_file)
                log.info("tls_certificate_reloaded", cert_file=str(tls.cert_file))
            seen = now
        except (OSError, ssl.SSLError, ConfigError, TimeoutError) as err:
            # A half-written pair, a hung mount: retried at the next tick; the old pair stays.
            log.warning(
                "tls_certificate_reload_failed",
                cert_file=str(tls.cert_file),
                error=str(err) or type(err).__name__,
            )
            seen = None
        first = False
        await asyncio.sleep(every)


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
