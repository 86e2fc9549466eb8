"""Inbound security in the Prometheus exporter-toolkit `--web.config.file` format.

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version}
    basic_auth_users: {name: bcrypt-hash}
    http_server_config: {headers: {Name: value}}

so ops teams reuse the files they already have for node_exporter & co. Authentication applies
to every endpoint; certificates are re-read when their files change.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

import bcrypt
import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails

from quantops_exporter.config import ConfigError
from quantops_exporter.problems import closest

log = structlog.get_logger("quantops_exporter.webconfig")
_T = TypeVar("_T")
REALM = 'Basic realm="quantops-exporter", charset="UTF-8"'
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
            if not hashed.get_secret_value().startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(
                    f"the password of {user!r} is not a bcrypt hash "
                    "(generate one with: htpasswd -nBC 10 '' | tr -d ':\\n')"
                )
        return value


_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {("tls_server_config",): TLSServerConfig}


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
        lines = [_problem(e) for e in err.errors()]
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


def _problem(error: ErrorDetails) -> str:
    """One line of a web config problem; a misspelled key names the key it most likely is."""
    where = ".".join(str(p) for p in error["loc"])
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


# bcrypt runs here, never on the loop's default executor: that one also resolves host names for
# the checks' HTTP requests, so a flood of wrong passwords must not queue in front of them.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcrypt")
MAX_PENDING_HASHES = 32  # beyond this many queued checks, refuse at once instead of queueing


class BasicAuth:
    """bcrypt-checked Basic authentication with a cache of successful checks.

    An unknown user costs one bcrypt check at the configured users' highest cost, as a known
    user with a wrong password does, so response time tells no user names.
    """

    def __init__(self, users: dict[str, SecretStr]) -> None:
        self._users = {name: h.get_secret_value().encode() for name, h in users.items()}
        self._good: set[bytes] = set()  # sha256(user:password:hash) of credentials that passed
        self.cost = max(_cost(hashed) for hashed in self._users.values())
        self._dummy: bytes | None = None
        self._pending = 0

    async def allowed(self, header: str | None) -> bool:
        """Whether an Authorization header carries valid credentials."""
        if self.known_good(header):
            return True
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        if hashed is None:
            dummy = await self.dummy_hash()
            await self._hash(bcrypt.checkpw, b"x", dummy)  # same cost: no user probing
            return False
        if await self._hash(bcrypt.checkpw, password.encode(), hashed):
            self._good.add(_cache_key(user, password, hashed))
            return True
        return False

    def known_good(self, header: str | None) -> bool:
        """Whether these credentials already passed a bcrypt check (no hashing: a client
        throttled for others' failures at its address still gets in with them)."""
        credentials = _credentials(header)
        if credentials is None or credentials[0] not in self._users:
            return False
        key = _cache_key(*credentials, self._users[credentials[0]])
        return any(hmac.compare_digest(key, good) for good in self._good)

    async def dummy_hash(self) -> bytes:
        """The hash an unknown user is checked against (made on first use)."""
        if self._dummy is None:
            self._dummy = await self._hash(bcrypt.hashpw, b"dummy", bcrypt.gensalt(self.cost))
        return self._dummy

    async def _hash(self, work: Callable[[bytes, bytes], _T], secret: bytes, salted: bytes) -> _T:
        if self._pending >= MAX_PENDING_HASHES:
            raise AuthBusy
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(_HASHING, work, secret, salted)
        finally:
            self._pending -= 1


class AuthBusy(Exception):
    """Too many password checks are queued: answer 429 without hashing."""


def _credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _cache_key(user: str, password: str, hashed: bytes) -> bytes:
    return hashlib.sha256(f"{user}:{password}:".encode() + hashed).digest()


def _cost(hashed: bytes) -> int:
    """The cost of a bcrypt hash (`$2b$12$...` → 12); 10 when it cannot be read."""
    parts = hashed.split(b"$")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else 10


class FailedAttempts:
    """Wrong credentials per client address: after `limit` within `window` seconds, that client
    is refused without a password check until the window has passed (429)."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 60.0,
        *,
        clients: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit, self._window, self._clients = limit, window, clients
        self._monotonic = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0 when it may now)."""
        failures = self._failures.get(client)
        if failures is None:
            return 0.0
        now = self._monotonic()
        while failures and now - failures[0] >= self._window:
            failures.popleft()
        if len(failures) < self._limit:
            return 0.0
        return self._window - (now - failures[0])

    def failed(self, client: str) -> None:
        """Count one wrong attempt by `client` (the oldest clients are forgotten past the cap)."""
        failures = self._failures.setdefault(client, deque(maxlen=self._limit))
        failures.append(self._monotonic())
        self._failures.move_to_end(client)
        while len(self._failures) > self._clients:
            self._failures.popitem(last=False)


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
