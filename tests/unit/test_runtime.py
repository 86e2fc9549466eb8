"""Reloads that cannot read their configuration: the loader runs off the event loop, within a
bound, and never holds up the probes, the other requests or the daemon's stop; what a reload
cannot apply says so."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import test_utils

from quantops_exporter.daemon import ReloadResult
from quantops_exporter.generation import Generation
from quantops_exporter.runtime import Runtime
from quantops_exporter.simulator.valkey_server import free_port
from quantops_exporter.web import build_web_app
from quantops_exporter.webconfig import WebConfig
from tests.conftest import make_generation, patience, runtime_for
from tests.tls import TestCA


class HungLoader:
    """A loader stuck as a read on a hung mount is, until released."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self) -> Generation:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.release.wait()
        return self.generation


async def reload_once(first: Generation, second: Generation) -> ReloadResult:
    """Start a runtime on `first`, reload it onto `second`, stop it: the reload's result."""
    runtime, _registry = runtime_for(first, lambda: second)
    await runtime.start()
    try:
        return await runtime.reload()
    finally:
        await runtime.stop()


@asynccontextmanager
async def hung(
    load_timeout: float,
) -> AsyncIterator[tuple[Runtime, HungLoader, test_utils.TestClient]]:  # type: ignore[type-arg]
    """A runtime whose loader hangs (bound: `load_timeout`), its web app and a client of it."""
    generation = make_generation(valkey_url=f"redis://127.0.0.1:{free_port()}/0")
    loader = HungLoader(generation)
    runtime, registry = runtime_for(generation, loader, load_timeout=load_timeout)
    async with test_utils.TestClient(test_utils.TestServer(build_web_app(runtime, registry))) as c:
        yield runtime, loader, c
    loader.release.set()


async def test_a_load_that_hangs_is_refused_while_everything_else_answers() -> None:
    """While the loader hangs (on its own thread, not the loop), /-/healthy and /metrics
    answer; after the bound the reload is refused, naming why, and the generation in force
    stays; the next reload, once the files answer, works."""
    async with hung(0.5) as (runtime, loader, client):
        await _refused_then_recovers(runtime, loader, client)


async def _refused_then_recovers(
    runtime: Runtime,
    loader: HungLoader,
    client: test_utils.TestClient,  # type: ignore[type-arg]
) -> None:
    before = runtime.generation
    reload = asyncio.create_task(runtime.reload())
    while not loader.entered.is_set():  # noqa: ASYNC110 - the thread signals no coroutine
        await asyncio.sleep(0.01)
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/metrics")).status == 200
    result = await reload
    assert not result.ok and "not read within 0.5 s" in result.message, result.message
    assert runtime.generation is before
    assert loader.threads[0] != threading.main_thread().name
    loader.release.set()
    assert (await runtime.reload()).ok


async def test_stopping_does_not_wait_for_a_load_that_hangs() -> None:
    """SIGTERM during a reload whose loader hangs: stop() returns at once, the reload is
    refused as the daemon stops (a hung file never holds up the exit)."""
    async with hung(3600.0) as (runtime, loader, _client):  # only the stop can end the wait
        reload = asyncio.create_task(runtime.reload())
        while not loader.entered.is_set():  # noqa: ASYNC110 - the thread signals no coroutine
            await asyncio.sleep(0.01)
        async with asyncio.timeout(patience(30)):
            await runtime.stop()
            result = await reload
        assert not result.ok and "stopping" in result.message


async def test_a_changed_tls_server_config_says_it_needs_a_restart(tmp_path: Path) -> None:
    """The listening socket keeps the TLS it started with: a reload that changes
    tls_server_config (a new certificate path) is applied with a note to restart."""
    ca = TestCA(tmp_path)

    def with_tls(name: str) -> Generation:
        issued = ca.issue(name)
        tls = {"cert_file": str(issued.cert), "key_file": str(issued.key)}
        return make_generation(
            valkey_url=f"redis://127.0.0.1:{free_port()}/0",
            web=WebConfig.model_validate({"tls_server_config": tls}),
        )

    result = await reload_once(with_tls("first"), with_tls("second"))
    assert result.ok and "tls_server_config changed: restart to apply it" in result.message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("web_telemetry_path", "/prom/metrics"),
        ("listen_address", "127.0.0.1:9999"),
        ("web_max_connections", 7),
    ],
)
async def test_a_setting_the_server_keeps_until_restart_says_so(name: str, value: object) -> None:
    """The route and the socket are built at start-up: a reload that changes the telemetry
    path, the listen address or the connection limit is applied with a note naming it, and the
    daemon goes on serving what it started with."""
    valkey = f"redis://127.0.0.1:{free_port()}/0"
    first = make_generation(valkey_url=valkey)
    second = make_generation(valkey_url=valkey, **{name: value})
    assert getattr(first.settings, name) != getattr(second.settings, name)
    result = await reload_once(first, second)
    assert result.ok and f"{name} changed: restart to apply it" in result.message
