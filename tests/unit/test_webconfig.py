"""Inbound security: the web config file, basic auth on every endpoint, TLS and mTLS, reload."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import yaml
from pydantic import SecretStr

from quantops_exporter.app import build_exporter, serve
from quantops_exporter.basicauth import BasicAuth, FailedAttempts, ProvenCredentials
from quantops_exporter.config import ConfigError
from quantops_exporter.simulator.valkey_server import free_port
from quantops_exporter.webconfig import (
    WebConfig,
    build_ssl_context,
    certificate_reloader,
    load_web_config,
    weakened,
)
from tests.conftest import make_generation, patience
from tests.tls import TestCA

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
ENDPOINTS = [
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/api/v1/checks"),
    ("GET", "/api/v1/checks/valkey_ping"),
    ("POST", "/api/v1/checks/valkey_ping/run"),
    ("POST", "/-/reload"),
]
PROBES = ["/-/healthy", "/-/ready"]  # open to probes unless QUANTOPS_WEB_PROBES_NEED_AUTH


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for Basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_config(tmp_path: Path, document: dict[str, Any]) -> Path:
    """A web config file."""
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"basic_auth_users": {"ops": "plaintext"}}, "not a bcrypt hash"),
        ({"basic_auth": {}}, "basic_auth: not a key of the web config: did you mean basic_auth_u"),
        (
            {"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"}},
            "tls_server_config.cert_file .*nope.crt: no such file",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequestClientCert",
                }
            },
            "is not supported",
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "min_version": "SSL3"}},
            "tls_server_config.min_version: SSL3 is not one of TLS10, TLS11, TLS12, TLS13",
        ),
    ],
)
def test_bad_web_configs_name_the_field(
    tmp_path: Path, document: dict[str, Any], message: str
) -> None:
    """Each mistake is a ConfigError naming the field and what is accepted."""
    with pytest.raises(ConfigError, match=message):
        load_web_config(write_config(tmp_path, document))


def test_mtls_needs_a_client_ca(tmp_path: Path) -> None:
    """RequireAndVerifyClientCert without client_ca_file is refused."""
    server = TestCA(tmp_path).issue("server")
    path = write_config(
        tmp_path,
        {
            "tls_server_config": {
                "cert_file": str(server.cert),
                "key_file": str(server.key),
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        },
    )
    with pytest.raises(ConfigError, match="client_ca_file is required"):
        load_web_config(path)


def test_unreadable_yaml(tmp_path: Path) -> None:
    """Broken YAML says so."""
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_web_config(path)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, TestCA, Any]]:
    """The daemon (serve) with TLS, mTLS optional, and basic auth, against nothing."""
    ca = TestCA(tmp_path)
    cert = ca.issue("server")
    config = load_web_config(
        write_config(
            tmp_path,
            {
                "tls_server_config": {
                    "cert_file": str(cert.cert),
                    "key_file": str(cert.key),
                    "client_ca_file": str(ca.ca.cert),
                    "client_auth_type": "RequireAndVerifyClientCert",
                },
                "basic_auth_users": {"prometheus": HASH},
                "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
            },
        )
    )
    port = free_port()
    generation = make_generation(
        web=config,
        listen_address=f"127.0.0.1:{port}",
        debug_runs=True,
        valkey_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(build_exporter(generation), stop))
    await asyncio.sleep(0.3)
    yield f"https://127.0.0.1:{port}", ca, config
    stop.set()
    await task


def client_context(ca: TestCA, *, with_cert: bool) -> ssl.SSLContext:
    """A client trusting the test CA, optionally presenting a client certificate."""
    context = ssl.create_default_context(cafile=str(ca.ca.cert))
    if with_cert:
        issued = ca.issue("client", client=True)
        context.load_cert_chain(issued.cert, issued.key)
    return context


async def test_every_endpoint_needs_credentials(server) -> None:  # type: ignore[no-untyped-def]
    """No password gets 401 everywhere; a wrong password 401 five times, then 429 for this
    address for a minute; credentials that passed before still get through meanwhile."""
    url, ca, _config = server
    context = client_context(ca, with_cert=True)
    good = basic("prometheus", "s3cret")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        for _ in range(2):  # the second check is served from the cache of good credentials
            async with http.get(url + "/metrics", headers=good) as response:
                assert response.status == 200
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert "runbook_check_ok" in await response.text()
        for failures, (method, path) in enumerate(ENDPOINTS):
            async with http.request(method, url + path) as response:
                assert response.status == 401, path  # no credentials: not a failed login
                assert response.headers["WWW-Authenticate"].startswith("Basic")
            async with http.request(
                method, url + path, headers=basic("prometheus", "wrong")
            ) as response:
                assert response.status == (401 if failures < 5 else 429), (path, failures)
        assert len(ENDPOINTS) > 5
        for path in PROBES:  # no credentials needed, whatever the failed logins
            async with http.get(url + path) as response:
                assert response.status in (200, 503), path
                assert "valkey_ping" not in await response.text()  # no check names
        async with http.get(url + "/metrics", headers=basic("prometheus", "wrong")) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) > 50
        async with http.get(url + "/metrics", headers=good) as response:
            assert response.status == 200


async def test_plain_http_and_missing_client_certificates_are_refused(server) -> None:  # type: ignore[no-untyped-def]
    """HTTP to the TLS port fails; HTTPS without a client certificate fails under mTLS."""
    url, ca, _config = server
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(url.replace("https", "http") + "/metrics") as response:
                await response.read()
    no_cert = client_context(ca, with_cert=False)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=no_cert)) as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(
                url + "/metrics", headers=basic("prometheus", "s3cret")
            ) as response:
                await response.read()


@contextlib.asynccontextmanager
async def tls_site(tmp_path: Path) -> AsyncIterator[tuple[TestCA, Any, Any, Any]]:
    """A TLS server on the certificate reloader: (CA, first certificate, its TLS config, a
    coroutine function giving the serial a new connection is served)."""
    ca = TestCA(tmp_path)
    first = ca.issue("server")
    config = load_web_config(
        write_config(
            tmp_path,
            {"tls_server_config": {"cert_file": str(first.cert), "key_file": str(first.key)}},
        )
    )
    tls = config.tls_server_config
    assert tls is not None
    context = build_ssl_context(tls)
    app = aiohttp.web.Application()

    async def hello(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="ok")

    app.router.add_get("/", hello)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()

    async def served_serial() -> int:
        client = ssl.create_default_context(cafile=str(ca.ca.cert))
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        from cryptography import x509

        return int(x509.load_der_x509_certificate(der).serial_number)

    try:
        async with certificate_reloader(context, tls, every=0.05):
            yield ca, first, tls, served_serial
    finally:
        await runner.cleanup()


async def test_certificates_are_reloaded_when_they_change(tmp_path: Path) -> None:
    """A renewed certificate is served to new connections without a restart."""
    async with tls_site(tmp_path) as (ca, first, _tls, served_serial):
        assert await served_serial() == first.serial
        await asyncio.sleep(0.05)
        renewed = ca.issue("server")  # same paths, new certificate
        async with asyncio.timeout(patience(5)):
            while await served_serial() != renewed.serial:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


@pytest.mark.parametrize("odd", ["FIFO", "directory"])
async def test_a_certificate_replaced_by_an_odd_file_never_blocks_the_loop(
    tmp_path: Path, odd: str
) -> None:
    """The certificate file replaced by a FIFO nobody writes (or a directory): new connections
    are still served, with the old certificate, and nobody reads the FIFO; a renewed regular
    file is then served."""
    async with tls_site(tmp_path) as (ca, first, tls, served_serial):
        assert await served_serial() == first.serial
        await asyncio.sleep(0.1)  # the reloader has seen the first pair
        tls.cert_file.unlink()
        if odd == "FIFO":
            os.mkfifo(tls.cert_file)
        else:
            tls.cert_file.mkdir()
        for _ in range(10):  # the reloader ticks every 0.05 s meanwhile
            async with asyncio.timeout(patience(10)):
                assert await served_serial() == first.serial
            await asyncio.sleep(0.05)
        if odd == "FIFO":
            with pytest.raises(OSError) as no_reader:
                os.open(tls.cert_file, os.O_WRONLY | os.O_NONBLOCK)
            assert no_reader.value.errno == errno.ENXIO
            tls.cert_file.unlink()
        else:
            tls.cert_file.rmdir()
        renewed = ca.issue("server")
        async with asyncio.timeout(patience(10)):
            while await served_serial() != renewed.serial:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def test_password_checks_run_on_their_own_threads_at_the_users_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logic: bcrypt never runs on the loop's default executor (which resolves the checks' host
    names), and an unknown user is checked against a dummy of the configured cost."""
    users = {"prometheus": SecretStr(bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode())}
    auth, proven = BasicAuth(users), ProvenCredentials()
    threads: list[str] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.current_thread().name)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert await auth.allowed(basic("prometheus", "pw")["Authorization"], proven)
    assert not await auth.allowed(basic("prometheus", "nope")["Authorization"], proven)
    assert not await auth.allowed(basic("mallory", "pw")["Authorization"], proven)
    assert len(threads) == 3 and all(name.startswith("bcrypt") for name in threads), threads
    assert auth.cost == 5 and (await auth.dummy_hash()).startswith(b"$2b$05$")


def test_failed_attempts_throttle_one_client_for_the_window() -> None:
    """Five failures in a minute block that address (not others) until the oldest expires."""
    now = [1000.0]
    attempts = FailedAttempts(limit=5, window=60, monotonic=lambda: now[0])
    for _ in range(4):
        attempts.failed("10.0.0.1")
        now[0] += 1
    assert attempts.retry_after("10.0.0.1") == 0
    attempts.failed("10.0.0.1")
    assert attempts.retry_after("10.0.0.1") == pytest.approx(56)
    assert attempts.retry_after("10.0.0.2") == 0
    now[0] += 56
    assert attempts.retry_after("10.0.0.1") == 0  # the first failure left the window


def test_failed_attempts_remember_a_bounded_number_of_clients() -> None:
    """A flood from many addresses cannot grow the table without bound."""
    attempts = FailedAttempts(limit=1, window=60, clients=100)
    for n in range(1000):
        attempts.failed(f"10.0.{n // 256}.{n % 256}")
    assert attempts.retry_after("10.0.3.231") > 0  # the newest is remembered
    assert attempts.retry_after("10.0.0.0") == 0  # the oldest were forgotten


TLS = {"cert_file": "/etc/x/tls.crt", "key_file": "/etc/x/tls.key"}
MTLS = TLS | {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "/etc/x/ca"}
USERS = {"basic_auth_users": {"prometheus": HASH}}


def web_config(document: dict[str, Any] | None) -> WebConfig | None:
    """A WebConfig as the file `document` would give (None: no web config at all)."""
    return None if document is None else WebConfig.model_validate(document)


@pytest.mark.parametrize(
    ("before", "after", "refused"),
    [
        (USERS, {}, "the file sets nothing (empty, or comments only): it would remove every"),
        (USERS, None, "no web config is given any more"),
        (USERS, {"http_server_config": {}}, "the file leaves out what it had"),
        (USERS, {"basic_auth_users": {}}, None),
        (USERS, {"basic_auth_users": {"other": HASH}}, None),
        ({"tls_server_config": TLS}, USERS, "`tls_server_config: null`"),
        ({"tls_server_config": TLS}, {"tls_server_config": None}, None),
        ({"tls_server_config": MTLS}, {"tls_server_config": TLS}, "`client_auth_type: NoClient"),
        (
            {"tls_server_config": MTLS},
            {"tls_server_config": TLS | {"client_auth_type": "NoClientCert"}},
            None,
        ),
        ({"tls_server_config": TLS}, {"tls_server_config": MTLS}, None),
        (USERS | {"tls_server_config": TLS}, {}, "`basic_auth_users: {}` and `tls_server_config"),
        (None, {}, None),
        ({}, {}, None),
    ],
)
def test_a_web_config_lowers_protection_only_by_saying_so(
    before: dict[str, Any] | None, after: dict[str, Any] | None, refused: str | None
) -> None:
    """Removing every user, TLS or client-certificate checks is refused unless the new file
    writes it out (`basic_auth_users: {}`, `tls_server_config: null`, `client_auth_type`);
    keeping or adding protection, or having had none, is never refused."""
    reason = weakened(web_config(before), web_config(after))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason, reason
