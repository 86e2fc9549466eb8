"""Hot reload: SIGHUP and POST /-/reload apply new settings live; a bad one is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import test_utils

from quantops_exporter.app import build_exporter
from quantops_exporter.config import ConfigError
from quantops_exporter.generation import Generation
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import patience
from tests.integration.conftest import generation_for
from tests.integration.test_daemon import FAST, until, value

pytestmark = pytest.mark.integration
# POST /-/reload on, unthrottled: these tests reload back to back.
LIFECYCLE = {"web_enable_lifecycle": True, "reload_min_interval_seconds": 0}


async def test_reload_fails_over_to_another_valkey_and_refuses_a_bad_config(
    sim: SepSimulator,
) -> None:
    """Point at a dead Valkey, reload onto the live one: checks recover, history is kept.
    Then a configuration that does not validate is refused and the running one stays."""
    assert sim.server is not None
    current: dict[str, Generation | Exception] = {
        "next": generation_for(
            sim, **LIFECYCLE, checks=FAST, valkey_url=f"redis://127.0.0.1:{free_port()}/0"
        )
    }

    def loader() -> Generation:
        value_ = current["next"]
        if isinstance(value_, Exception):
            raise value_
        return value_

    first = loader()
    assert isinstance(first, Generation)
    exporter = build_exporter(first, loader=loader)
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
        # valkey_ping itself has failed (not just another check marking Valkey down).
        await until(
            client,
            lambda t: (
                value(t, "runbook_check_failure_reason", check="valkey_ping", reason="unreachable")
                == 1
            ),
        )
        errors_before = len(exporter.board.states["valkey_ping"].history)
        current["next"] = generation_for(
            sim, **LIFECYCLE, checks=FAST
        )  # the live server: a failover
        response = await client.post("/-/reload")
        assert response.status == 200 and "reloaded" in await response.text()
        text = await until(client, lambda t: value(t, "runbook_check_ok", check="valkey_ping") == 1)
        assert value(text, "quantops_exporter_config_last_reload_successful") == 1
        history = [o.status.value for o in exporter.board.states["valkey_ping"].history]
        assert errors_before >= 1 and history[0] == "error" and history[-1] == "ok"

        current["next"] = ConfigError("QUANTOPS_LISTEN_ADDRESS='nope': expected host:port")
        response = await client.post("/-/reload")
        assert response.status == 500 and "QUANTOPS_LISTEN_ADDRESS" in await response.text()
        runs = (
            value(
                await (await client.get("/metrics")).text(),
                "runbook_check_runs_total",
                check="valkey_ping",
                status="ok",
            )
            or 0
        )
        text = await until(
            client,
            lambda t: (
                (value(t, "runbook_check_runs_total", check="valkey_ping", status="ok") or 0)
                > runs + 2
            ),
        )
        assert value(text, "quantops_exporter_config_last_reload_successful") == 0
        assert value(text, "runbook_check_ok", check="valkey_ping") == 1  # the old one runs on


async def test_sighup_rereads_the_env_file(sim: SepSimulator, tmp_path: Path) -> None:
    """The real daemon: rewrite --env-file, send SIGHUP, and the new Valkey is used."""
    assert sim.server is not None
    env_file = tmp_path / ".env.hotband"
    env_file.write_text(f"VALKEY_URL=redis://127.0.0.1:{free_port()}/0\n")
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_") and k != "VALKEY_URL"
    } | {
        "SEP_API_URL": sim.api_url,
        "ALLOCATOR_URL": sim.allocator_url,
        "QUANTOPS_MARKET_HOURS": "always",
        "QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS": "0.5",
        "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS": "0.4",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quantops_exporter",
        "--env-file",
        str(env_file),
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as http:

            async def valkey_up() -> float | None:
                try:
                    async with http.get(url) as response:
                        return value(
                            await response.text(), "runbook_dependency_up", dependency="valkey"
                        )
                except aiohttp.ClientError:
                    return None

            async with asyncio.timeout(patience(20)):
                while await valkey_up() != 0:  # noqa: ASYNC110 - polling a subprocess
                    await asyncio.sleep(0.2)
            env_file.write_text(f"VALKEY_URL={sim.server.url}\n")
            process.send_signal(signal.SIGHUP)
            async with asyncio.timeout(patience(20)):
                while await valkey_up() != 1:  # noqa: ASYNC110 - polling a subprocess
                    await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert b'"event": "config_reloaded"' in err


async def test_each_request_sees_one_generation_whole_while_reloads_swap_them(
    sim: SepSimulator,
) -> None:
    """Logic, in-process (a real Valkey and a real HTTP client; the loader is a function).

    Two generations differ in a response header (web config), the runbook link (settings) and
    whether valkey_ping runs (catalog). Readers hammer the page and the API while reloads flip
    between them: every answer is one generation whole. Once B is in force, valkey_ping never
    runs again, so an old scheduler left running would be caught."""
    from quantops_exporter.webconfig import HTTPServerConfig, WebConfig

    def generation(tag: str, *, ping: bool) -> Generation:
        return generation_for(
            sim,
            **LIFECYCLE,
            checks={**FAST, "valkey_ping": {**FAST["valkey_ping"], "enabled": ping}},
            runbook_url=f"https://runbook.example/{tag}",
            web=WebConfig(http_server_config=HTTPServerConfig(headers={"X-Generation": tag})),
        )

    generations = {"a": generation("a", ping=True), "b": generation("b", ping=False)}
    loads = 0

    def loader() -> Generation:
        nonlocal loads
        loads += 1
        return generations["b" if loads % 2 else "a"]

    exporter = build_exporter(generations["a"], loader=loader)
    seen: dict[str, int] = {"a": 0, "b": 0}
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
        await until(client, lambda t: value(t, "runbook_check_ok", check="valkey_ping") == 1)
        reloading = True

        async def read_page() -> None:
            while reloading:
                response = await client.get("/")
                tag = response.headers["X-Generation"]
                assert f"https://runbook.example/{tag}#" in await response.text()
                seen[tag] += 1

        async def read_api() -> None:
            while reloading:
                response = await client.get("/api/v1/checks")
                tag = response.headers["X-Generation"]
                rows = {row["check"]: row for row in (await response.json())["checks"]}
                assert rows["valkey_ping"]["enabled"] is (tag == "a")

        readers = [asyncio.create_task(read()) for read in (read_page, read_api, read_page)]
        recorded: list[str] = []
        for n in range(9):  # odd: B is in force at the end
            response = await client.post("/-/reload")
            assert response.status == 200, await response.text()
            if n == 8:  # its answer comes once the retired generation's runs have ended
                exporter.board.subscribe(lambda outcome: recorded.append(outcome.check))
            await asyncio.sleep(0.05)
        reloading = False
        await asyncio.gather(*readers)
        assert seen["a"] > 0 and seen["b"] > 0, seen  # both generations were really served
        assert (await client.get("/")).headers["X-Generation"] == "b"

        # Counted as the board records them, not from /metrics: a render may lag the board
        # by its staleness bound, which is not what this test is about.
        await asyncio.sleep(2.0)  # four valkey_ping intervals
        assert "valkey_ping" not in recorded, recorded
        assert "kill_switch" in recorded  # B's own schedule runs
