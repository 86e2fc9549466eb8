"""Outbound security: bearer token and custom CA toward the API; Valkey over TLS with a
client certificate and an ACL user whose password comes from a file. Secrets never show."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from quantops_exporter.config import ConfigError, load_settings
from quantops_exporter.generation import build_generation, load_generation, open_context
from quantops_exporter.simulator.valkey_server import ValkeyServer, free_port
from quantops_exporter.sources import errors
from quantops_exporter.sources.health import Dependency, DependencyHealth
from tests.conftest import make_generation, make_settings
from tests.proxy import tcp_proxy
from tests.tls import TestCA

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def https_api(ca: TestCA, seen: list[str]) -> AsyncIterator[str]:
    """An HTTPS API with a certificate from `ca`, recording Authorization headers."""
    cert = ca.issue("api")

    async def kill_switch(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"kill_switch": False})

    app = web.Application()
    app.router.add_get("/api/kill-switch", kill_switch)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_bearer_token_from_a_file_and_a_custom_ca(tmp_path: Path) -> None:
    """The token read from API_BEARER_TOKEN_FILE is sent; the custom CA verifies the API."""
    ca = TestCA(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    seen: list[str] = []
    async with https_api(ca, seen) as url:
        settings = make_settings(
            sep_api_url=url, api_bearer_token_file=token_file, api_ca_file=ca.ca.cert
        )
        async with open_context(build_generation(settings), DependencyHealth()) as ctx:
            assert await ctx.http.get_json(Dependency.API, url + "/api/kill-switch") == {
                "kill_switch": False
            }
        assert seen == ["Bearer tok-123"]
        # Without the CA the API's certificate is not trusted: unreachable, not silently ok.
        async with open_context(make_generation(sep_api_url=url), DependencyHealth()) as ctx:
            with pytest.raises(errors.Unreachable, match="certificate"):
                await ctx.http.get_json(Dependency.API, url + "/api/kill-switch")


def tls_terminator(ca: TestCA) -> ssl.SSLContext:
    """A server context with a certificate from `ca`, requiring client certificates from it."""
    cert = ca.issue("valkey")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.ca.cert))
    context.load_cert_chain(cert.cert, cert.key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def test_valkey_over_tls_with_client_certificate_and_acl_password(
    tmp_path: Path, own_valkey_server: ValkeyServer
) -> None:
    """rediss:// with the CA, a client certificate and an ACL user/password from a file."""
    admin = aioredis.Redis.from_url(own_valkey_server.url)
    await admin.execute_command(
        "ACL",
        "SETUSER",
        "quantops",
        "on",
        ">pw-from-file",
        "~*",
        "resetchannels",
        "-@all",
        "+@read",
        "+ping",
    )
    await admin.aclose()
    ca = TestCA(tmp_path)
    client = ca.issue("exporter", client=True)
    password = tmp_path / "valkey-password"
    password.write_text("pw-from-file\n")
    async with tcp_proxy(own_valkey_server.port, tls=tls_terminator(ca)) as port:
        settings = make_settings(
            valkey_url=f"rediss://127.0.0.1:{port}/0",
            valkey_username="quantops",
            valkey_password_file=password,
            valkey_ca_file=ca.ca.cert,
            valkey_cert_file=client.cert,
            valkey_key_file=client.key,
        )
        async with open_context(build_generation(settings), DependencyHealth()) as ctx:
            assert await ctx.valkey.ping() > 0
        # Without the client certificate the proxy refuses the handshake.
        no_cert = make_settings(
            valkey_url=f"rediss://127.0.0.1:{port}/0",
            valkey_username="quantops",
            valkey_password_file=password,
            valkey_ca_file=ca.ca.cert,
        )
        async with open_context(build_generation(no_cert), DependencyHealth()) as ctx:
            with pytest.raises(errors.Unreachable):
                await ctx.valkey.ping()


def test_secrets_are_masked_and_file_problems_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config never shows a secret; unreadable or mismatched files are config errors."""
    secret = tmp_path / "token"
    secret.write_text("very-secret-token")
    monkeypatch.setenv("API_BEARER_TOKEN_FILE", str(secret))
    monkeypatch.setenv("VALKEY_PASSWORD", "valkey-secret")
    generation = load_generation()
    shown = generation.settings.masked()
    assert shown["API_BEARER_TOKEN_FILE"] == str(secret) and shown["VALKEY_PASSWORD"] == "***"
    assert "very-secret-token" not in repr(shown) and "valkey-secret" not in repr(shown)
    assert "very-secret-token" not in repr(generation)  # the secret read from the file
    monkeypatch.setenv("VALKEY_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"VALKEY_PASSWORD_FILE=.*absent: no such file"):
        load_generation()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe-not-text")
    monkeypatch.setenv("VALKEY_PASSWORD_FILE", str(binary))
    with pytest.raises(ConfigError, match=r"VALKEY_PASSWORD_FILE=.*: not UTF-8 text"):
        load_generation()
    monkeypatch.delenv("VALKEY_PASSWORD_FILE")
    monkeypatch.setenv("QUANTOPS_VALKEY_CA_FILE", str(secret))
    with pytest.raises(ConfigError, match="need a TLS URL: VALKEY_URL=rediss://"):
        load_settings()


async def test_a_wrong_valkey_password_reads_forbidden_not_unreachable(
    own_valkey_server: ValkeyServer,
) -> None:
    """An ACL user with the wrong password: error/forbidden naming the credentials, and Valkey
    still counts as up (it answered); it used to read as unreachable, an outage."""
    from quantops_exporter.checks.verdict import Reason, reason_for

    admin = aioredis.Redis.from_url(own_valkey_server.url)
    await admin.execute_command("ACL", "SETUSER", "quantops", "on", ">right", "~*", "+@read")
    await admin.aclose()
    url = own_valkey_server.url.replace("redis://", "redis://quantops:wrong@")
    health = DependencyHealth()
    async with open_context(make_generation(valkey_url=url), health) as ctx:
        with pytest.raises(errors.Forbidden, match="refused the credentials") as raised:
            await ctx.valkey.ping()
    assert reason_for(raised.value) is Reason.FORBIDDEN
    assert "wrong" not in str(raised.value)
