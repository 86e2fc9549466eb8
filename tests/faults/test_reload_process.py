"""Reload and start-up faults of the real daemon (process tests: a subprocess, real signals,
real files). Issue 10, items 5, 6 and 9."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import yaml

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.simulator.stack import SepSimulator
from tests.conftest import clean_env, patience
from tests.process import Daemon, config_problems, daemon

pytestmark = pytest.mark.integration
RELOADED = "quantops_exporter_config_last_reload_successful"


def stack_env(sim: SepSimulator) -> dict[str, str]:
    """The simulated stack's addresses, valkey_ping every second."""
    assert sim.server is not None
    return {
        "VALKEY_URL": sim.server.url,
        "SEP_API_URL": sim.api_url,
        "ALLOCATOR_URL": sim.allocator_url,
        "QUANTOPS_MARKET_HOURS": "always",
        "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS": "1",
        "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS": "0.5",
    }


async def reload_refused(running: Daemon, headers: dict[str, str] | None = None) -> None:
    """Wait until the reload metric says the last reload was refused."""

    async def refused() -> bool:
        status, text = await running.get("/metrics", headers=headers)
        return status == 200 and f"\n{RELOADED} 0.0" in text

    await running.until(refused, 15, "the reload metric at 0")
    assert running.events("config_reload_failed"), running.log()[-1500:]


async def ping_keeps_running(running: Daemon, headers: dict[str, str] | None = None) -> None:
    """valkey_ping (every second) runs at least three more times."""

    async def runs() -> float:
        status, text = await running.get("/metrics", headers=headers)
        assert status == 200
        key = 'runbook_check_runs_total{check="valkey_ping",status="ok"} '
        line = next(line for line in text.splitlines() if line.startswith(key))
        return float(line.removeprefix(key))

    before = await runs()
    await running.until(lambda: _more(runs, before + 3), 10, "three more valkey_ping runs")


async def _more(read, at_least: float) -> bool:  # type: ignore[no-untyped-def]
    return await read() >= at_least


async def _status(running: Daemon, path: str, expected: int) -> bool:
    return (await running.get(path))[0] == expected


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header (aiohttp's BasicAuth is deprecated)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


async def test_sighup_rereads_the_web_config_and_refuses_a_broken_one(
    sim: SepSimulator, tmp_path: Path
) -> None:
    """A user removed from the web config gets 401 after SIGHUP; a broken web config is a
    refused reload (metric 0, config_reload_failed) and the previous users stay in force."""
    web = tmp_path / "web.yml"
    alice, bob = basic("alice", "a-pass"), basic("bob", "b-pass")
    users = {"alice": hashed("a-pass"), "bob": hashed("b-pass")}
    web.write_text(yaml.safe_dump({"basic_auth_users": users}))
    async with daemon(tmp_path, stack_env(sim), "--web.config.file", str(web)) as running:
        assert (await running.get("/metrics", headers=bob))[0] == 200
        del users["bob"]
        web.write_text(yaml.safe_dump({"basic_auth_users": users}))
        running.signal(signal.SIGHUP)

        async def bob_refused() -> bool:
            return (await running.get("/metrics", headers=bob))[0] == 401

        await running.until(bob_refused, 15, "bob refused after SIGHUP")
        assert (await running.get("/metrics", headers=alice))[0] == 200
        web.write_text("basic_auth_users: [this is: not a mapping\n")
        running.signal(signal.SIGHUP)
        await reload_refused(running, alice)
        (failed,) = running.events("config_reload_failed")
        assert str(web) in failed["error"]
        assert (await running.get("/metrics", headers=alice))[0] == 200
        assert (await running.get("/metrics", headers=bob))[0] == 401


async def test_a_reload_that_cannot_be_opened_is_refused_and_checks_run_on(
    sim: SepSimulator, tmp_path: Path
) -> None:
    """QUANTOPS_API_CA_FILE pointing at a file that is not PEM, added to the env file before
    SIGHUP: the reload is refused (metric 0, the log names the variable), /-/ready stays 200 and
    valkey_ping keeps its one-second cadence."""
    env_file = tmp_path / ".env"
    env_file.write_text("QUANTOPS_LOG_LEVEL=info\n")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    async with daemon(tmp_path, stack_env(sim), "--env-file", str(env_file)) as running:
        await running.until(lambda: _status(running, "/-/ready", 200), 30, "ready")
        env_file.write_text(f"QUANTOPS_API_CA_FILE={not_pem}\n")
        running.signal(signal.SIGHUP)
        await reload_refused(running)
        (failed,) = running.events("config_reload_failed")
        assert "QUANTOPS_API_CA_FILE" in failed["error"] and "PEM" in failed["error"]
        assert (await running.get("/-/ready"))[0] == 200
        await ping_keeps_running(running)


def test_check_config_refuses_what_run_refuses(tmp_path: Path) -> None:
    """check-config builds the client TLS context too: a non-PEM CA file exits 2, one line."""
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    done = subprocess.run(
        [sys.executable, "-m", "quantops_exporter", "check-config"],
        env=clean_env() | {"QUANTOPS_API_CA_FILE": str(not_pem)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "QUANTOPS_API_CA_FILE" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_non_utf8_env_file_exits_2_in_one_line(tmp_path: Path, command: str) -> None:
    """An env file in Latin-1 (a stray é): exit 2, one problem line under the one prefix,
    naming the file and the fix."""
    env_file = tmp_path / ".env.hotband"
    env_file.write_bytes(b"VALKEY_URL=redis://127.0.0.1:6379/0\n# caf\xe9\n")
    done = subprocess.run(
        [sys.executable, "-m", "quantops_exporter", "--env-file", str(env_file), command],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = config_problems(done.stderr)
    assert str(env_file) in line and "UTF-8" in line


async def test_a_non_utf8_env_file_on_sighup_is_a_refused_reload(
    sim: SepSimulator, tmp_path: Path
) -> None:
    """The same file on reload: refused (metric 0), the daemon runs on."""
    env_file = tmp_path / ".env"
    env_file.write_text("QUANTOPS_LOG_LEVEL=info\n")
    async with daemon(tmp_path, stack_env(sim), "--env-file", str(env_file)) as running:
        env_file.write_bytes(b"# caf\xe9\n")
        running.signal(signal.SIGHUP)
        await reload_refused(running)
        assert "UTF-8" in running.events("config_reload_failed")[0]["error"]
        await ping_keeps_running(running)
        await asyncio.sleep(0)


async def test_reload_endpoint_is_off_by_default_and_a_storm_breaks_nothing(
    sim: SepSimulator, tmp_path: Path
) -> None:
    """Default: a cross-site form POST to /-/reload gets 403 and reloads nothing. With
    --web.enable-lifecycle (unthrottled), 40 concurrent reloads while checks run: all answer
    200, no traceback, no check records an error (old runs finish, new ones start)."""
    env = stack_env(sim) | {"QUANTOPS_RELOAD_MIN_INTERVAL_SECONDS": "0"}
    async with daemon(tmp_path, env) as running:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                running.url + "/-/reload",
                headers={"Origin": "http://evil.example"},
                data={"x": "1"},
            ) as response,
        ):
            assert response.status == 403
        assert not running.events("config_reloaded")
    async with daemon(tmp_path, env, "--web.enable-lifecycle") as running:
        await running.until(lambda: _status(running, "/-/ready", 200), 30, "ready")
        async with aiohttp.ClientSession() as http:

            async def reload() -> int:
                async with http.post(running.url + "/-/reload") as response:
                    return response.status

            for _ in range(4):
                statuses = await asyncio.gather(*(reload() for _ in range(10)))
                assert set(statuses) == {200}
                await asyncio.sleep(0.3)
        reloads = len(running.events("config_reloaded"))
        assert 1 <= reloads <= 8, reloads  # concurrent requests coalesced
        await ping_keeps_running(running)
        errors = await running.metric(
            "runbook_check_runs_total", check="valkey_ping", status="error"
        )
        assert not errors
        assert not running.events("check_crashed")
    assert "CancelledError" not in running.log()


class HungApi:
    """An API that accepts every connection, reads the request and never answers; it counts
    the requests going on per path (the most ever at once: a check overlapping itself)."""

    def __init__(self) -> None:
        self.going: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> HungApi:
        self._server = await asyncio.start_server(self._hang, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        request = await reader.readline()  # GET /api/kill-switch HTTP/1.1
        parts = request.split()
        path = parts[1].decode() if len(parts) > 1 else "?"
        self.going[path] += 1
        self.total[path] += 1
        self.most[path] = max(self.most[path], self.going[path])
        try:
            await reader.read()  # until the client goes away; never a byte back
        finally:
            self.going[path] -= 1


async def test_a_check_hung_on_the_stack_across_reloads(sim: SepSimulator, tmp_path: Path) -> None:
    """kill_switch hangs on an API that never answers (timeout 2 s, every 3 s) while ten
    reloads come a second apart, more often than its timeout: each is answered at once, the
    check never has two requests going, its timeouts keep being recorded (runs from before a
    reload finish in the background), and SIGTERM exits 0 at once although runs hang (the
    daemon() helper allows 20 s; Docker's stop 10)."""
    # Every timeout at most 2 s: a reload's grace for the old runs is then 3 s.
    short = {f"QUANTOPS_CHECKS__{c.name}__TIMEOUT_SECONDS": "2" for c in CHECKS if c.timeout > 2}
    async with HungApi() as api:
        env = (
            stack_env(sim)
            | short
            | {
                "SEP_API_URL": api.url,
                "QUANTOPS_RELOAD_MIN_INTERVAL_SECONDS": "0",
                "QUANTOPS_CHECKS__kill_switch__INTERVAL_SECONDS": "3",
                "QUANTOPS_CHECKS__kill_switch__TIMEOUT_SECONDS": "2",
            }
        )
        async with daemon(tmp_path, env, "--web.enable-lifecycle") as running:

            async def timeouts() -> float:
                value = await running.metric(
                    "runbook_check_runs_total", check="kill_switch", status="error"
                )
                return value or 0.0

            await running.until(lambda: _more(timeouts, 1), 10, "a first kill_switch timeout")
            before = await timeouts()
            async with aiohttp.ClientSession() as http:
                for _ in range(10):
                    async with asyncio.timeout(patience(1)):
                        async with http.post(running.url + "/-/reload") as response:
                            assert response.status == 200, await response.text()
                    await asyncio.sleep(1)
            # Recorded while the reloads went on (runs of 2 s, one at a time: ~4 in 10 s).
            assert await timeouts() >= before + 2, running.log()[-1500:]
            assert api.most["/api/kill-switch"] == 1, api.most
            await ping_keeps_running(running)


async def test_a_run_on_demand_is_one_run_of_its_check(sim: SepSimulator, tmp_path: Path) -> None:
    """POST /api/v1/checks/{name}/run with the API hung: while the scheduled run hangs it is
    409 with Retry-After (a check never overlaps itself); across a reload it ends with its own
    timeout, not with the retired generation's sources closed under it; at SIGTERM it is
    answered 503 and the exit does not wait out its 30 s timeout (a disabled check runs on
    demand too)."""
    async with HungApi() as api:
        env = stack_env(sim) | {
            "SEP_API_URL": api.url,
            "QUANTOPS_DEBUG_RUNS": "true",
            "QUANTOPS_DEBUG_RUN_MIN_INTERVAL_SECONDS": "0",
            "QUANTOPS_CHECKS__kill_switch__INTERVAL_SECONDS": "60",
            "QUANTOPS_CHECKS__kill_switch__TIMEOUT_SECONDS": "3",
            # Not scheduled, so that its run on demand has the lane; it hangs for 30 s.
            "QUANTOPS_CHECKS__trading_mode__ENABLED": "false",
            "QUANTOPS_CHECKS__trading_mode__INTERVAL_SECONDS": "120",
            "QUANTOPS_CHECKS__trading_mode__TIMEOUT_SECONDS": "30",
        }
        async with daemon(tmp_path, env) as running, aiohttp.ClientSession() as http:

            async def run_now(name: str) -> tuple[int, dict[str, Any], str | None]:
                url = f"{running.url}/api/v1/checks/{name}/run"
                async with http.post(url) as response:
                    body = await response.json()
                    return response.status, body, response.headers.get("Retry-After")

            await running.until(
                lambda: asyncio.sleep(0, api.total["/api/kill-switch"] >= 1), 10, "kill_switch"
            )
            status, body, retry = await run_now("kill_switch")
            assert status == 409 and retry is not None and 1 <= int(retry) <= 3, (retry, body)

            async def kill_switch_timeouts() -> float:
                value = await running.metric(
                    "runbook_check_runs_total", check="kill_switch", status="error"
                )
                return value or 0.0

            await running.until(
                lambda: _more(kill_switch_timeouts, 1),
                10,
                "the scheduled kill_switch run's timeout",
            )
            across = asyncio.create_task(run_now("kill_switch"))
            await asyncio.sleep(0.5)
            running.process.send_signal(signal.SIGHUP)
            status, body, _ = await across
            assert status == 200, body
            assert body["outcome"]["reason"] == "timeout", body["outcome"]
            assert running.events("config_reloaded")
            hung = asyncio.create_task(run_now("trading_mode"))
            await running.until(
                lambda: asyncio.sleep(0, api.going["/api/trading/mode"] >= 1), 10, "it hangs"
            )
            running.process.send_signal(signal.SIGTERM)
            status, body, _ = await asyncio.wait_for(hung, patience(5))
            assert status == 503 and "stopping" in body["error"], body
            await asyncio.wait_for(running.process.wait(), 20)  # then daemon() sends no 2nd
        assert api.most["/api/kill-switch"] == 1, api.most


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05])
async def test_a_sighup_during_the_exit_is_ignored(
    sim: SepSimulator, tmp_path: Path, delay: float
) -> None:
    """SIGHUP `delay` seconds after SIGTERM (configuration management reloading as the unit
    stops): the exit is still 0 and clean. asyncio restores the default action of the signals
    it handled when its loop closes, and SIGHUP's default kills (exit 129)."""
    async with daemon(tmp_path, stack_env(sim)) as running:
        running.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(delay)
        for _ in range(3):
            if running.process.returncode is None:
                running.process.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(running.process.wait(), 20)
    # daemon() requires exit 0 and no traceback
    assert not running.events("config_reloaded")
