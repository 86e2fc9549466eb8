"""The running daemon: serves /metrics through outages and recovers without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import test_utils, web
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.app import build_exporter
from quantops_exporter.checks.base import Outcome
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Reason
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.sources.health import Dependency
from tests.conftest import patience
from tests.integration.conftest import generation_for

pytestmark = pytest.mark.integration

# Every check at a half-second cadence, so a test sees several runs in a few seconds.
FAST = {c.name: {"interval_seconds": 0.5, "timeout_seconds": 0.4} for c in CHECKS}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from exposition text."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def daemon(sim: SepSimulator) -> AsyncIterator[test_utils.TestClient]:  # type: ignore[type-arg]
    """The exporter (scheduler included) against the simulator, with half-second cadences."""
    exporter = build_exporter(generation_for(sim, checks=FAST))
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
        yield client


async def scrape(client: test_utils.TestClient) -> str:  # type: ignore[type-arg]
    """GET /metrics, which must answer 200."""
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


async def until(
    client: test_utils.TestClient,
    predicate: Callable[[str], bool],  # type: ignore[type-arg]
    limit: float = 10.0,
) -> str:
    """Scrape until `predicate(text)` holds; fail after `limit` seconds."""
    async with asyncio.timeout(patience(limit)):
        while True:
            text = await scrape(client)
            if predicate(text):
                return text
            await asyncio.sleep(0.1)


def all_ok(text: str) -> bool:
    """Every check's ok gauge is 1."""
    return all(value(text, "runbook_check_ok", check=c) == 1 for c in FAST)


async def test_daemon_reports_all_ok_against_a_healthy_stack(daemon) -> None:  # type: ignore[no-untyped-def]
    """Every check of the catalog reaches ok=1, readiness turns 200, freshness is exported."""
    text = await until(daemon, all_ok)
    assert (await daemon.get("/-/ready")).status == 200
    assert value(text, "runbook_dependency_up", dependency="valkey") == 1
    assert (
        value(
            text,
            "runbook_freshness_last_update_timestamp_seconds",
            source="ws_manifold",
            instrument="EUR_USD",
        )
        is not None
    )


async def test_valkey_killed_and_restarted_under_the_daemon(
    daemon,
    sim: SepSimulator,  # type: ignore[no-untyped-def]
) -> None:
    """Valkey down: /metrics keeps answering with valkey down and errors; back: all ok again."""
    await until(daemon, all_ok)
    await sim.set_scenario(Scenario.VALKEY_DOWN)
    text = await until(
        daemon,
        lambda t: (
            value(t, "runbook_check_failure_reason", check="valkey_ping", reason="unreachable") == 1
        ),
    )
    assert value(text, "runbook_dependency_up", dependency="valkey") == 0
    assert value(text, "runbook_check_ok", check="valkey_ping") == 0
    assert value(text, "runbook_check_status", check="valkey_ping", status="error") == 1
    await sim.set_scenario(Scenario.HEALTHY)
    text = await until(daemon, all_ok)
    assert value(text, "runbook_dependency_up", dependency="valkey") == 1


async def test_scrape_answers_while_a_check_hangs(sim: SepSimulator) -> None:
    """With the API hung mid-request, /metrics still answers and the check ends as timeout,
    naming the endpoint that hung."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.json_response({"kill_switch": False})

    app = web.Application()
    app.router.add_get("/api/kill-switch", hang)
    async with test_utils.TestServer(app) as api:
        generation = generation_for(
            sim,
            checks={"kill_switch": {"interval_seconds": 5, "timeout_seconds": 1}},
            sep_api_url=str(api.make_url("")).rstrip("/"),
        )
        exporter = build_exporter(generation)
        async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
            await asyncio.wait_for(entered.wait(), 5)
            text = await scrape(client)  # the check is in flight right now
            assert not release.is_set()
            assert value(text, "runbook_check_ok", check="kill_switch") == 0
            text = await until(
                client,
                lambda t: (
                    value(t, "runbook_check_failure_reason", check="kill_switch", reason="timeout")
                    == 1
                ),
            )
            # The hung endpoint is down; the server answers the others (404 here): it is up.
            assert (
                value(
                    text,
                    "runbook_dependency_endpoint_up",
                    dependency="api",
                    endpoint="/api/kill-switch",
                )
                == 0
            )
            assert (
                value(
                    text,
                    "runbook_check_unreadable",
                    check="kill_switch",
                    dependency="api",
                    item="/api/kill-switch",
                    reason="timeout",
                )
                == 1
            )
            release.set()


async def test_daemon_starts_with_valkey_down_and_recovers_when_it_appears(
    sim: SepSimulator,
) -> None:
    """Valkey absent at start: the daemon serves, reports unreachable, then recovers unaided."""
    await sim.set_scenario(Scenario.VALKEY_DOWN)
    exporter = build_exporter(generation_for(sim, checks=FAST))
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
        text = await until(
            client,
            lambda t: (
                value(t, "runbook_check_failure_reason", check="valkey_ping", reason="unreachable")
                == 1
            ),
        )
        assert value(text, "runbook_dependency_up", dependency="valkey") == 0
        assert (await client.get("/-/healthy")).status == 200
        await sim.set_scenario(Scenario.HEALTHY)  # starts the server and writes the keys
        await until(client, all_ok)


async def test_api_down_does_not_mark_valkey_down(sim: SepSimulator) -> None:
    """kill_switch reads the API and Valkey together: the API refusing must not blame Valkey."""
    from quantops_exporter.checks.catalog import CHECKS
    from quantops_exporter.generation import open_context
    from quantops_exporter.runner import run_check
    from quantops_exporter.simulator.valkey_server import free_port
    from quantops_exporter.sources.health import Dependency, DependencyHealth

    health = DependencyHealth()
    generation = generation_for(sim, sep_api_url=f"http://127.0.0.1:{free_port()}")
    kill_switch = next(c for c in CHECKS if c.name == "kill_switch")
    async with open_context(generation, health) as ctx:
        for _ in range(5):  # the race depends on which read finishes first: try a few times
            outcome = await run_check(kill_switch, ctx)
            assert outcome.reason.value == "unreachable"
            assert health.state[Dependency.API] is False
            assert health.state[Dependency.VALKEY] is True


async def test_paused_valkey_times_out_and_recovers(daemon, sim: SepSimulator) -> None:  # type: ignore[no-untyped-def]
    """A SIGSTOPped Valkey: checks end at their timeout (error/timeout), /metrics keeps
    answering, Valkey is marked down; after SIGCONT everything is ok again without a restart."""
    import os
    import signal

    await until(daemon, all_ok)
    assert sim.server is not None and sim.server.pid is not None
    os.kill(sim.server.pid, signal.SIGSTOP)
    try:
        text = await until(
            daemon,
            lambda t: (
                value(t, "runbook_check_failure_reason", check="valkey_ping", reason="timeout") == 1
            ),
        )
        assert value(text, "runbook_dependency_up", dependency="valkey") == 0
    finally:
        os.kill(sim.server.pid, signal.SIGCONT)
    await until(daemon, all_ok)


async def test_a_hung_api_does_not_delay_valkey_checks(sim: SepSimulator) -> None:
    """With every API endpoint hung, the Valkey checks run on: while one API request hangs for
    its whole timeout (4 s), manifold_freshness (every 0.5 s) starts run after run. Counted on
    the board, not timed (a loaded machine delays runs, it does not stop them): a loop blocked
    by the hung requests would start none."""
    hung = {"interval_seconds": 5, "timeout_seconds": 4}
    api = {c.name: hung for c in CHECKS if Dependency.API in c.dependencies}
    exporter = build_exporter(generation_for(sim, checks={**FAST, **api}))
    recorded: list[Outcome] = []
    hang_ended = asyncio.Event()

    def record(outcome: Outcome) -> None:
        recorded.append(outcome)
        if outcome.check == "trading_mode" and outcome.reason is Reason.TIMEOUT:
            hang_ended.set()

    exporter.board.subscribe(record)
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
        await until(client, all_ok)
        await sim.set_scenario(Scenario.API_SLOW)
        await asyncio.wait_for(hang_ended.wait(), patience(10))  # a run every 5 s, hung 4 s
        request = next(
            o for o in recorded if o.check == "trading_mode" and o.reason is Reason.TIMEOUT
        )
        during = [
            o
            for o in recorded
            if o.check == "manifold_freshness"
            and request.started_at <= o.started_at <= request.started_at + request.duration
        ]
        assert len(during) >= 3, f"{len(during)} manifold runs while the API hung 4 s"
        await sim.set_scenario(Scenario.HEALTHY)


async def test_debug_run_against_the_stack(sim: SepSimulator) -> None:
    """POST /api/v1/checks/manifold_freshness/run: the outcome, and a trace of its one pipeline.
    Right at start the check's first scheduled run is due: 409 with Retry-After (a run on
    demand never makes a scheduled run skip); once it ran, the next is 10 s away."""
    exporter = build_exporter(generation_for(sim, debug_runs=True))
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as client:
        early = await client.post("/api/v1/checks/manifold_freshness/run")
        if exporter.board.states["manifold_freshness"].latest is None:
            assert early.status == 409 and int(early.headers["Retry-After"]) >= 1
        async with asyncio.timeout(patience(10)):
            while exporter.board.states["manifold_freshness"].latest is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        response = await client.post("/api/v1/checks/manifold_freshness/run")
        assert response.status == 200
        payload = await response.json()
        assert payload["outcome"]["status"] == "ok"
        pipelines = [e for e in payload["trace"] if e["event"] == "valkey_pipeline"]
        assert len(pipelines) == 1 and pipelines[0]["commands"] == 16  # GET + PTTL x 8
        assert (await client.post("/api/v1/checks/manifold_freshness/run")).status == 429
