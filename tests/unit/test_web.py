"""HTTP endpoints: /metrics negotiation and compression, health, readiness, the JSON board."""

from __future__ import annotations

import dataclasses
import gzip
import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlsplit

import pytest
from aiohttp import test_utils

from quantops_exporter.app import build_exporter
from quantops_exporter.board import Board
from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Reason, Status, Verdict
from quantops_exporter.daemon import DebugRun, ReloadResult
from quantops_exporter.generation import Generation
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.trace import trace
from quantops_exporter.web import build_web_app
from tests.conftest import make_generation
from tests.factories import make_check, outcome

NOW = 1_800_000_000.0


class StubDaemon:
    """The `Daemon` protocol over a board and a generation, for the handlers alone."""

    def __init__(self, generation: Generation) -> None:
        self.board = Board(generation.catalog)
        self.generation = generation

    async def reload(self) -> ReloadResult:
        return ReloadResult(True, "reloaded")

    async def debug_run(self, name: str) -> DebugRun:
        raise AssertionError("the handlers tested here never run a check")


@pytest.fixture
def daemon() -> StubDaemon:
    """The real catalog, nothing run yet, the runbook at an example URL."""
    return StubDaemon(make_generation(runbook_url="https://runbook.example/ops.md"))


@pytest.fixture
def board(daemon: StubDaemon) -> Board:
    """The daemon's board."""
    return daemon.board


@pytest.fixture
async def client(daemon: StubDaemon) -> AsyncIterator[test_utils.TestClient]:  # type: ignore[type-arg]
    """A client of the web app over the stub daemon."""
    registry, _ = build_registry(daemon.board, DependencyHealth(), CHECKS)
    app = build_web_app(daemon, registry, clock=lambda: NOW)
    async with test_utils.TestClient(test_utils.TestServer(app)) as http:
        yield http


def record_all(board: Board, status: Status = Status.OK) -> None:
    """Give every check an outcome."""
    for check in CHECKS:
        board.record(outcome(check.name, status, summary="fine", started_at=1.8e9))


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
    board.record(outcome("kill_switch", Status.FAIL, Reason.MISMATCH, "API off, Valkey on"))
    payload = await (await client.get("/api/v1/checks")).json()
    rows = {row["check"]: row for row in payload["checks"]}
    assert list(rows) == [c.name for c in CHECKS]
    assert rows["kill_switch"]["status"] == "fail"
    assert rows["kill_switch"]["reason"] == "mismatch"
    assert rows["kill_switch"]["runbook"].startswith("Pre-Open Spin-Up §1")
    assert rows["valkey_ping"]["status"] is None


async def test_status_page_shows_every_check_by_section(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """Every check has a row under its runbook section; failing rows say so in words."""
    record_all(board)
    board.record(
        outcome(
            "manifold_freshness",
            Status.FAIL,
            Reason.STALE,
            "manifold cache: stale: EUR_USD (10m old)",
            started_at=NOW - 4,
        )
    )
    body = await (await client.get("/")).text()
    for check in CHECKS:
        assert f'data-check="{check.name}"' in body
    for section in (
        "Pre-Open Spin-Up",
        "Daily Ops Snapshot",
        "Post-Deploy Warmup",
        "Troubleshooting",
        "Recovery",
    ):
        assert f"<caption>{section}</caption>" in body
    row = body[body.index('id="check-manifold_freshness"') :]
    row = row[: row.index("</tr>")]
    assert 'data-status="fail"' in row and "✗ fail" in row and "(stale)" in row
    assert "EUR_USD (10m old)" in row and "4s ago" in row
    assert 'href="https://runbook.example/ops.md#pre-open-spin-up-510-minutes"' in row
    assert '<a href="#attention">1 of 22 checks failing</a>' in body
    # what fails comes first, with the runbook's words for its steps, then the whole board
    attention = body[body.index('id="attention"') : body.index('id="board"')]
    assert 'id="attention-manifold_freshness"' in attention and "EUR_USD (10m old)" in attention
    assert "<strong>Freshness</strong>" in attention  # the runbook's step, in its words
    assert "<code>ws:last:manifold:{instrument}</code> timestamps are ≤30 seconds" in attention
    assert 'data-check="valkey_ping"' not in attention
    assert 'http-equiv="refresh"' in body and 'name="viewport"' in body
    assert "http://" not in body.replace("https://runbook.example", "")  # no external assets
    assert 'href="./metrics"' in body and 'href="./api/v1/checks"' in body


@pytest.mark.parametrize("telemetry_path", ["/metrics", "/prom/metrics", "/a:b"])
async def test_every_link_of_the_status_page_answers_and_stays_under_a_prefix(
    telemetry_path: str,
) -> None:
    """Each of the exporter's own links on the page answers 200 when followed from the page,
    whatever --web.telemetry-path says; resolved from a page a proxy serves at /exporter/, it
    stays under /exporter/ (the links are relative, and a colon does not make one a scheme)."""
    generation = make_generation(web_telemetry_path=telemetry_path)
    stub = StubDaemon(generation)
    record_all(stub.board)
    registry, _ = build_registry(stub.board, DependencyHealth(), CHECKS)
    app = build_web_app(stub, registry, clock=lambda: NOW)
    async with test_utils.TestClient(test_utils.TestServer(app)) as http:
        page = await (await http.get("/")).text()
        links = {
            link
            for link in re.findall(r'href="([^"]+)"', page)
            if not link.startswith(("#", generation.settings.runbook_url))
        }
        assert "." + telemetry_path in links
        for link in sorted(links):
            path = urlsplit(urljoin("http://exporter.example/", link)).path
            assert (await http.get(path)).status == 200, (link, path)
            behind = urlsplit(urljoin("http://proxy.example/exporter/", link))
            assert behind.netloc == "proxy.example", link
            assert behind.path.startswith("/exporter/"), link


async def test_status_page_shows_sessions_and_an_active_diagnosis(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """The sessions strip tells each session by its local hours (NOW is Friday 08:00 UTC: Tokyo
    17:00 and London 08:00 are open, New York 03:00 and Sydney 19:00 are not), even though the
    stub's calendar (QUANTOPS_MARKET_HOURS=always) counts every session as open, and says so.
    A failing diagnosis needs attention, with its runbook step marked."""
    board.record(
        outcome(
            "no_positions_diagnosis",
            Status.FAIL,
            Reason.MISSING,
            "flat for 400s; step 3_budget: populate the budget",
            observations={"step": "3_budget"},
        )
    )
    body = await (await client.get("/")).text()
    assert "Tokyo: open" in body and "London: open" in body
    assert "Sydney: closed" in body and "New York: closed" in body
    assert "every session as open (QUANTOPS_MARKET_HOURS=always)" in body
    item = body[body.index('id="attention-no_positions_diagnosis"') :]
    item = item[: item.index("</li></ol>")]
    assert "flat for 7m; step 3_budget" in item  # 400s, spelt as every other age
    assert (
        '<li class="current"><a href="https://runbook.example/ops.md#troubleshooting-no-'
        'positions-while-gates-are-green">Troubleshooting step 3</a>: Budget populated?'
    ) in item


async def test_status_page_escapes_what_it_shows(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """Summaries come from the wire: they are escaped."""
    board.record(outcome("valkey_ping", Status.ERROR, Reason.BAD_PAYLOAD, "<script>x</script>"))
    body = await (await client.get("/")).text()
    assert "<script>x" not in body and "&lt;script&gt;" in body


async def test_one_check_with_history(
    client: test_utils.TestClient,
    board: Board,  # type: ignore[type-arg]
) -> None:
    """GET /api/v1/checks/{name}: the latest outcome, observations and bounded history."""
    for index in range(25):
        board.record(
            outcome(
                "valkey_ping",
                summary="ok",
                started_at=NOW + index,
                observations={"latency_seconds": 0.001},
            )
        )
    payload = await (await client.get("/api/v1/checks/valkey_ping")).json()
    assert payload["status"] == "ok"
    assert payload["observations"] == {"latency_seconds": 0.001}
    assert len(payload["history"]) == 20  # bounded
    assert payload["history"][-1]["started_at"] == NOW + 24
    assert (await client.get("/api/v1/checks/nope")).status == 404


async def test_debug_runs_are_off_by_default() -> None:
    """Without QUANTOPS_DEBUG_RUNS the endpoint refuses and says how to enable it."""
    exporter = build_exporter(make_generation())
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as http:
        response = await http.post("/api/v1/checks/valkey_ping/run")
        assert response.status == 403
        assert "QUANTOPS_DEBUG_RUNS=true" in (await response.json())["error"]


async def test_debug_run_returns_outcome_and_trace_and_is_rate_limited() -> None:
    """Enabled: the run's outcome and trace come back, nothing is recorded, then 429."""

    async def probe(ctx: CheckContext) -> Verdict:
        trace("probe_read", key="ws:last:manifold:EUR_USD")
        return Verdict(Status.FAIL, Reason.STALE, "probe stale")

    # Disabled, so the schedule never runs it: only the debug run does.
    check = make_check(probe, name="probe", enabled=False)
    generation = make_generation(debug_runs=True, debug_run_min_interval_seconds=30)
    exporter = build_exporter(dataclasses.replace(generation, catalog=(check,)))
    async with test_utils.TestClient(test_utils.TestServer(exporter.app)) as http:
        response = await http.post("/api/v1/checks/probe/run")
        assert response.status == 200
        payload = await response.json()
        assert payload["outcome"]["status"] == "fail"
        assert payload["recorded"] is False
        assert [e["event"] for e in payload["trace"]] == ["probe_read"]
        assert exporter.board.states["probe"].latest is None  # the board is untouched
        again = await http.post("/api/v1/checks/probe/run")
        assert again.status == 429 and int(again.headers["Retry-After"]) >= 29
        assert (await http.post("/api/v1/checks/nope/run")).status == 404


class CountingDaemon(StubDaemon):
    """Counts the reloads it is asked for."""

    def __init__(self, generation: Generation) -> None:
        super().__init__(generation)
        self.reloads = 0

    async def reload(self) -> ReloadResult:
        self.reloads += 1
        return ReloadResult(True, "reloaded")


async def lifecycle_client(**settings: object) -> tuple[CountingDaemon, test_utils.TestClient]:  # type: ignore[type-arg]
    stub = CountingDaemon(make_generation(**settings))
    registry, _ = build_registry(stub.board, DependencyHealth(), CHECKS)
    client = test_utils.TestClient(test_utils.TestServer(build_web_app(stub, registry)))
    await client.start_server()
    return stub, client


async def test_reload_endpoint_is_off_by_default() -> None:
    """As Prometheus without --web.enable-lifecycle: 403 naming the flag; nothing reloads."""
    stub, client = await lifecycle_client()
    try:
        for method in ("POST", "PUT"):
            response = await client.request(method, "/-/reload")
            assert response.status == 403
            assert "--web.enable-lifecycle" in await response.text()
        assert stub.reloads == 0
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("headers", "data", "status"),
    [
        ({}, None, 200),  # curl -X POST
        ({"Origin": "http://evil.example"}, None, 403),
        ({"Origin": "null"}, None, 403),
        ({"Sec-Fetch-Site": "cross-site"}, None, 403),
        ({"Sec-Fetch-Site": "same-site"}, None, 403),
        ({"Sec-Fetch-Site": "same-origin"}, None, 200),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "a=1", 415),
        ({"Content-Type": "text/plain"}, "x", 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "--x--", 415),
    ],
)
async def test_enabled_reload_refuses_what_a_web_page_could_send(
    headers: dict[str, str], data: str | None, status: int
) -> None:
    """A page in an operator's browser can POST a form cross-site without a preflight: such
    requests are refused; a plain POST (curl, Prometheus tooling) reloads."""
    stub, client = await lifecycle_client(web_enable_lifecycle=True)
    try:
        response = await client.post("/-/reload", headers=headers, data=data)
        assert response.status == status, await response.text()
        assert stub.reloads == (1 if status == 200 else 0)
    finally:
        await client.close()


async def test_enabled_reload_is_rate_limited() -> None:
    """A second request within QUANTOPS_RELOAD_MIN_INTERVAL_SECONDS gets 429 and Retry-After."""
    stub, client = await lifecycle_client(web_enable_lifecycle=True, reload_min_interval_seconds=30)
    try:
        assert (await client.post("/-/reload")).status == 200
        response = await client.post("/-/reload")
        assert response.status == 429 and response.headers["Retry-After"] == "30"
        assert stub.reloads == 1
    finally:
        await client.close()
