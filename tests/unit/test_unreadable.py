"""Endpoint-level truth: a server with one failing endpoint stays up, and every check that could
not read says what (the dependency, the endpoint or key, the reason) on /metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import fakeredis
import pytest
from aiohttp import test_utils, web

from quantops_exporter.board import Board
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.freshness import GATES_BLOB_KEY, check_manifold_freshness
from quantops_exporter.checks.gates import check_gates_sanity
from quantops_exporter.checks.kill_switch import KILL_SWITCH_KEY, check_kill_switch
from quantops_exporter.checks.pricing import check_spread_guard
from quantops_exporter.checks.verdict import Reason, Status, Unreadable
from quantops_exporter.metrics import build_registry
from quantops_exporter.runner import run_check
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.sources.http import HttpReader
from quantops_exporter.sources.valkey import ValkeyReader
from tests.factories import make_check, make_ctx, outcome

PAIRS = ("EUR_USD", "GBP_USD")
NOW = 1_800_000_000.0
released = asyncio.Event()


async def _answer(request: web.Request) -> web.Response:
    return web.json_response({"kill_switch": False, "mode": "live", "oanda_connected": True})


async def _500(request: web.Request) -> web.Response:
    return web.Response(status=500, text="Internal Server Error")


async def _shapeless(request: web.Request) -> web.Response:
    return web.json_response({"kill": "switch"})


async def _reset(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()
    return web.Response(text="never sent")


async def _hang(request: web.Request) -> web.Response:
    await released.wait()
    return web.json_response({"kill_switch": False})


async def serve(routes: dict[str, object]) -> test_utils.TestServer:
    """A started server answering `routes` (path: handler)."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)  # type: ignore[arg-type]
    server = test_utils.TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def http() -> AsyncIterator[tuple[HttpReader, DependencyHealth]]:
    """A reader and the health it reports to."""
    health = DependencyHealth()
    session = aiohttp.ClientSession()
    yield HttpReader(session, health), health
    await session.close()


async def test_one_endpoint_answering_500_keeps_the_server_up_request_after_request(
    http: tuple[HttpReader, DependencyHealth],
) -> None:
    """/api/kill-switch answering 500 beside answering endpoints: the API reads up after every
    request (it alternated before), and that endpoint alone reads down."""
    reader, health = http
    server = await serve({"/api/kill-switch": _500, "/api/trading/mode": _answer})
    base = str(server.make_url("")).rstrip("/")
    seen = []
    for _ in range(4):
        await reader.get_json(Dependency.API, base + "/api/trading/mode")
        seen.append(health.state[Dependency.API])
        with pytest.raises(Exception, match="HTTP 500"):
            await reader.get_json(Dependency.API, base + "/api/kill-switch")
        seen.append(health.state[Dependency.API])
    await server.close()
    assert seen == [True] * 8
    assert health.endpoints == {
        (Dependency.API, "/api/trading/mode"): True,
        (Dependency.API, "/api/kill-switch"): False,
    }


async def test_a_refused_connection_downs_every_endpoint_of_the_server(
    http: tuple[HttpReader, DependencyHealth],
) -> None:
    """The server stops: the first refused request downs the dependency and every endpoint
    asked before, without waiting for each to be asked again."""
    reader, health = http
    server = await serve({"/api/kill-switch": _answer, "/api/trading/mode": _answer})
    base = str(server.make_url("")).rstrip("/")
    await reader.get_json(Dependency.API, base + "/api/kill-switch")
    await reader.get_json(Dependency.API, base + "/api/trading/mode")
    await server.close()
    with pytest.raises(Exception, match="GET"):
        await reader.get_json(Dependency.API, base + "/api/kill-switch")
    assert health.state[Dependency.API] is False
    assert set(health.endpoints.values()) == {False}


async def test_every_endpoint_answering_500_is_the_server_down(
    http: tuple[HttpReader, DependencyHealth],
) -> None:
    """5xx on one endpoint is that endpoint's; on every endpoint asked, the server is down."""
    reader, health = http
    server = await serve({"/a": _500, "/b": _500})
    base = str(server.make_url("")).rstrip("/")
    for path in ("/a", "/b"):
        with pytest.raises(Exception, match="HTTP 500"):
            await reader.get_json(Dependency.API, base + path)
    await server.close()
    assert health.state[Dependency.API] is False


async def test_a_connection_cut_mid_answer_is_the_endpoint_s(
    http: tuple[HttpReader, DependencyHealth],
) -> None:
    """One handler closing the connection is that endpoint down, the server still up."""
    reader, health = http
    server = await serve({"/ok": _answer, "/reset": _reset})
    base = str(server.make_url("")).rstrip("/")
    await reader.get_json(Dependency.API, base + "/ok")
    with pytest.raises(Exception, match="GET"):
        await reader.get_json(Dependency.API, base + "/reset")
    await server.close()
    assert health.state[Dependency.API] is True
    assert health.endpoints[(Dependency.API, "/reset")] is False


@pytest.mark.parametrize(
    ("handler", "reason"),
    [(_500, Reason.HTTP_ERROR), (_shapeless, Reason.BAD_PAYLOAD)],
    ids=["500", "shapeless JSON"],
)
async def test_the_kill_switch_says_which_endpoint_it_could_not_read(
    http: tuple[HttpReader, DependencyHealth], handler: object, reason: Reason
) -> None:
    """The kill switch check in error names /api/kill-switch and the reason, whether the
    reader (a 500) or the check's own parsing (an answer without `kill_switch`) refused it."""
    reader, _health = http
    server = await serve({"/api/kill-switch": handler})
    valkey = ValkeyReader(fakeredis.FakeAsyncRedis(), DependencyHealth())
    await valkey._client.set(KILL_SWITCH_KEY, "0")
    ctx = make_ctx(valkey=valkey, http=reader, api_url=str(server.make_url("")).rstrip("/"))
    outcome = await run_check(make_check(check_kill_switch, name="kill_switch"), ctx)
    await server.close()
    assert outcome.status is Status.ERROR
    assert outcome.unreadable == (Unreadable(Dependency.API, "/api/kill-switch", reason),)


async def test_a_timeout_names_the_endpoint_that_did_not_answer(
    http: tuple[HttpReader, DependencyHealth],
) -> None:
    """A hung endpoint: error/timeout, naming that endpoint (and only it)."""
    reader, health = http
    released.clear()
    server = await serve({"/api/kill-switch": _hang})
    valkey = ValkeyReader(fakeredis.FakeAsyncRedis(), DependencyHealth())
    ctx = make_ctx(valkey=valkey, http=reader, api_url=str(server.make_url("")).rstrip("/"))
    check = make_check(check_kill_switch, name="kill_switch", timeout=0.3)
    outcome = await run_check(check, ctx)
    released.set()
    await server.close()
    assert (outcome.status, outcome.reason) == (Status.ERROR, Reason.TIMEOUT)
    assert outcome.unreadable == (Unreadable(Dependency.API, "/api/kill-switch", Reason.TIMEOUT),)
    assert health.endpoints[(Dependency.API, "/api/kill-switch")] is False


async def test_an_endpoint_is_its_path_never_the_query_sent(
    http: tuple[HttpReader, DependencyHealth],
) -> None:
    """The spread guard asks /api/oanda/pricing?instruments=...: the item is the path alone,
    so the instruments (or anything else in a query) never become a label value."""
    reader, health = http
    server = await serve({"/api/oanda/pricing": _500})
    ctx = make_ctx(http=reader, api_url=str(server.make_url("")).rstrip("/"), instruments=PAIRS)
    outcome = await run_check(make_check(check_spread_guard, name="spread_guard"), ctx)
    await server.close()
    assert outcome.unreadable == (
        Unreadable(Dependency.API, "/api/oanda/pricing", Reason.HTTP_ERROR),
    )
    assert list(health.endpoints) == [(Dependency.API, "/api/oanda/pricing")]


async def test_one_garbage_manifold_names_its_key_and_nothing_else() -> None:
    """Valkey answers and one instrument's manifold is not JSON: the run names that key and
    the reason, not Valkey as a whole, and not the fresh instrument beside it."""
    client = fakeredis.FakeAsyncRedis()
    await client.set("ws:last:manifold:EUR_USD", b"\x89PNG not json")
    await client.set("ws:last:manifold:GBP_USD", json.dumps({"ts_ms": int(NOW * 1000)}))
    health = DependencyHealth()
    ctx = make_ctx(valkey=ValkeyReader(client, health), instruments=PAIRS, clock=lambda: NOW)
    outcome = await run_check(make_check(check_manifold_freshness), ctx)
    assert (outcome.status, outcome.reason) == (Status.ERROR, Reason.BAD_PAYLOAD)
    assert outcome.unreadable == (
        Unreadable(Dependency.VALKEY, "ws:last:manifold:EUR_USD", Reason.BAD_PAYLOAD),
    )
    assert health.state[Dependency.VALKEY] is True


async def test_a_key_of_the_wrong_type_names_that_key() -> None:
    """The gates blob written as a HASH: wrong_type, naming the key."""
    client = fakeredis.FakeAsyncRedis()
    await client.hset(GATES_BLOB_KEY, "ts", "1")
    ctx = make_ctx(valkey=ValkeyReader(client, DependencyHealth()), instruments=PAIRS)
    outcome = await run_check(make_check(check_gates_sanity), ctx)
    assert outcome.unreadable == (Unreadable(Dependency.VALKEY, GATES_BLOB_KEY, Reason.WRONG_TYPE),)


def test_metrics_say_what_could_not_be_read_and_which_endpoint_is_down() -> None:
    """/metrics carries runbook_check_unreadable per check, dependency, item and reason, and
    runbook_dependency_endpoint_up per endpoint beside runbook_dependency_up."""
    board = Board(CHECKS)
    health = DependencyHealth()
    health.mark(Dependency.API, True, "/api/trading/mode")
    health.mark(Dependency.API, False, "/api/kill-switch")
    registry, _ = build_registry(board, health, CHECKS)
    where = Unreadable(Dependency.API, "/api/kill-switch", Reason.HTTP_ERROR)
    board.record(outcome("kill_switch", Status.ERROR, Reason.HTTP_ERROR, unreadable=(where,)))
    labels = {
        "check": "kill_switch",
        "dependency": "api",
        "item": "/api/kill-switch",
        "reason": "http_error",
    }
    assert registry.get_sample_value("runbook_check_unreadable", labels) == 1
    assert registry.get_sample_value("runbook_dependency_up", {"dependency": "api"}) == 1
    endpoint = {"dependency": "api", "endpoint": "/api/kill-switch"}
    assert registry.get_sample_value("runbook_dependency_endpoint_up", endpoint) == 0
