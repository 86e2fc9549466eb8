"""HTTP endpoints: /metrics negotiation and compression, health, readiness, the JSON board."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import test_utils

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Outcome, Reason, Status
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.web import build_web_app


@pytest.fixture
def board() -> Board:
    """The real catalog's board, empty."""
    return Board(CHECKS)


@pytest.fixture
async def client(board: Board) -> AsyncIterator[test_utils.TestClient]:  # type: ignore[type-arg]
    """A client of the web app over `board`."""
    registry, _ = build_registry(board, DependencyHealth(), CHECKS)
    app = build_web_app(board, registry)
    async with test_utils.TestClient(test_utils.TestServer(app)) as http:
        yield http


def record_all(board: Board, status: Status = Status.OK) -> None:
    """Give every check an outcome."""
    for check in CHECKS:
        board.record(Outcome(check.name, status, Reason.NONE, "fine", 1.8e9, 0.01, True))


async def test_metrics_text_format(client: test_utils.TestClient) -> None:  # type: ignore[type-arg]
    """Prometheus text format by default, with every check's ok series."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = await response.text()
    for check in CHECKS:
        assert f'runbook_check_ok{{check="{check.name}"}} 0.0' in body


async def test_metrics_openmetrics_when_asked(client: test_utils.TestClient) -> None:  # type: ignore[type-arg]
    """A scraper that accepts OpenMetrics gets it, ending with # EOF."""
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).rstrip().endswith("# EOF")


async def test_metrics_gzip(client: test_utils.TestClient) -> None:  # type: ignore[type-arg]
    """gzip is used when the scraper accepts it."""
    response = await client.get(
        "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert b"runbook_check_ok" in gzip.decompress(await response.read())


async def test_ready_only_after_every_check_ran(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """/-/ready is 503 naming the checks still waiting, then 200 once all ran."""
    response = await client.get("/-/ready")
    assert response.status == 503
    assert "valkey_ping" in await response.text()
    record_all(board)
    assert (await client.get("/-/ready")).status == 200
    assert (await client.get("/-/healthy")).status == 200


async def test_checks_api_lists_the_board(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """GET /api/v1/checks returns every check with its runbook step and latest outcome."""
    board.record(
        Outcome(
            "kill_switch", Status.FAIL, Reason.MISMATCH, "API off, Valkey on", 1.8e9, 0.01, True
        )
    )
    payload = await (await client.get("/api/v1/checks")).json()
    rows = {row["check"]: row for row in payload["checks"]}
    assert list(rows) == [c.name for c in CHECKS]
    assert rows["kill_switch"]["status"] == "fail"
    assert rows["kill_switch"]["reason"] == "mismatch"
    assert rows["kill_switch"]["runbook"].startswith("Pre-Open Spin-Up §1")
    assert rows["valkey_ping"]["status"] is None


async def test_index_escapes_and_links(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """The landing page links /metrics and escapes summaries."""
    board.record(
        Outcome(
            "valkey_ping", Status.ERROR, Reason.BAD_PAYLOAD, "<script>x</script>", 1.8e9, 0.01, True
        )
    )
    body = await (await client.get("/")).text()
    assert 'href="/metrics"' in body
    assert "<script>x" not in body and "&lt;script&gt;" in body
