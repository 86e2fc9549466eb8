"""/metrics from stored bytes: what is served is byte for byte what prometheus_client renders of
the same registry, after every kind of change; scrapes during changes only ever see whole boards;
renders run in the worker thread, at most one per STALE however a client rotates its asks, and
a scrape of stored results renders nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import test_utils
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, Exemplar, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector

from quantops_exporter import exposition as exposition_module
from quantops_exporter.board import Board
from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.pricing import PRICING_PATH
from quantops_exporter.checks.verdict import (
    Freshness,
    Measure,
    Reading,
    Reason,
    Source,
    Status,
    Unreadable,
    Verdict,
)
from quantops_exporter.daemon import DebugRun, ReloadResult
from quantops_exporter.encoding import OPENMETRICS as OPENMETRICS_KIND
from quantops_exporter.encoding import TEXT as TEXT_KIND
from quantops_exporter.encoding import Families, fast_openmetrics, negotiate
from quantops_exporter.exposition import LIVE_MAX_AGE, Busy, ExposedRegistry, exposition_of
from quantops_exporter.generation import Generation
from quantops_exporter.market import transitions
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.web import build_web_app
from tests.conftest import make_generation
from tests.factories import NOW, FrozenClock, make_check, outcome

TEXT = ""  # no Accept header: Prometheus text 0.0.4
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
RENDER = {TEXT: generate_latest, OPENMETRICS: generate_openmetrics}
PARSE = {TEXT: parse_text, OPENMETRICS: parse_openmetrics}


class Exporter:
    """A board, its dependency health and its registry over a generation, wired as app.py does;
    `reload` swaps a generation in as Runtime does, in one synchronous step."""

    def __init__(self, generation: Generation, *, created: bool = False) -> None:
        self.generation = generation
        self.board = Board(generation.catalog)
        self.health = DependencyHealth()
        self.clock = FrozenClock(NOW)
        registry, self.metrics = build_registry(
            self.board,
            self.health,
            generation.catalog,
            lambda: self.generation.thresholds,
            lambda: self.generation.calendar,
            self.clock,
            created=created,
        )
        assert isinstance(registry, ExposedRegistry)
        self.registry = registry
        self.exposition = registry.exposition

    def reload(self, generation: Generation) -> None:
        self.board.reconfigure(generation.catalog)
        self.metrics.add_checks(generation.catalog)
        self.generation = generation
        self.metrics.reload.record(True)

    def expected(self, accept: str) -> bytes:
        """prometheus_client's own rendering of the registry, now."""
        return RENDER[accept](self.registry)


class StubDaemon:
    """The `Daemon` protocol over the exporter's board, for the web app."""

    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    @property
    def board(self) -> Board:
        return self._exporter.board

    @property
    def generation(self) -> Generation:
        return self._exporter.generation

    async def reload(self) -> ReloadResult:
        raise AssertionError("not used here")

    async def debug_run(self, name: str) -> DebugRun:
        raise AssertionError("not used here")


def record_outcome(exporter: Exporter) -> None:
    fresh = (
        Freshness(Source.WS_MANIFOLD, "EUR_USD", NOW - 12),
        Freshness(Source.WS_MANIFOLD, "USD_JPY", NOW - 700),
    )
    readings = (Reading(Measure.SPREAD_BPS, 1.5, ("EUR_USD",)),)
    exporter.board.record(
        outcome("manifold_freshness", Status.FAIL, Reason.STALE, freshness=fresh, readings=readings)
    )


def record_transition(exporter: Exporter) -> None:
    exporter.board.record(outcome("valkey_ping", Status.ERROR, Reason.UNREACHABLE, duration=1.2))


def reload_changed_catalog(exporter: Exporter) -> None:
    """A reload: an interval and a freshness limit changed."""
    exporter.reload(
        make_generation(
            checks={"manifold_freshness": {"interval_seconds": 7}}, fresh_max_ws_age_sec=45
        )
    )


def disable_a_check(exporter: Exporter) -> None:
    """A reload that disables kill_switch."""
    exporter.reload(make_generation(checks={"kill_switch": {"enabled": False}}))


async def never_run(ctx: CheckContext) -> Verdict:
    raise AssertionError("checks do not run here")


def remove_and_add_checks(exporter: Exporter) -> None:
    """A catalog without valkey_ping and with a check it did not have."""
    catalog = (*exporter.generation.catalog[1:], make_check(never_run, name="extra"))
    exporter.generation = dataclasses.replace(exporter.generation, catalog=catalog)
    exporter.board.reconfigure(catalog)
    exporter.metrics.add_checks(catalog)


def valkey_down(exporter: Exporter) -> None:
    exporter.health.mark(Dependency.VALKEY, False)


def valkey_up(exporter: Exporter) -> None:
    exporter.health.mark(Dependency.VALKEY, True)


def api_answers(exporter: Exporter) -> None:
    """Two endpoints of the API answer."""
    exporter.health.mark(Dependency.API, True, "/api/trading/mode")
    exporter.health.mark(Dependency.API, True, PRICING_PATH)


def pricing_endpoint_down(exporter: Exporter) -> None:
    """The pricing endpoint stops answering, the other still does: runbook_dependency_up stays,
    only runbook_dependency_endpoint_up moves (no change hook: probed)."""
    exporter.health.mark(Dependency.API, False, PRICING_PATH)


def record_unreadable(exporter: Exporter) -> None:
    """A run that could not read the pricing endpoint: runbook_check_unreadable."""
    where = Unreadable(Dependency.API, PRICING_PATH, Reason.HTTP_ERROR)
    exporter.board.record(
        outcome("spread_guard", Status.ERROR, Reason.HTTP_ERROR, unreadable=(where,))
    )


def reload_refused(exporter: Exporter) -> None:
    exporter.metrics.reload.record(False)


def reload_to_fx_hours(exporter: Exporter) -> None:
    """A reload from QUANTOPS_MARKET_HOURS=always to the FX calendar: the market timestamps
    appear."""
    exporter.reload(make_generation(market_hours="fx"))


def market_transition(exporter: Exporter) -> None:
    """The clock reaches the market's next open or close (a day on when it never closes): no
    outcome, no reload, only time."""
    coming = transitions(exporter.generation.calendar, exporter.clock.now).until
    exporter.clock.now = coming if coming != float("inf") else exporter.clock.now + 86_400


# What the scheduler updates without the board hearing of it.
def run_started_late(exporter: Exporter) -> None:
    exporter.metrics.scheduler.lag.labels("manifold_freshness").observe(0.3)


def run_missed(exporter: Exporter) -> None:
    exporter.metrics.scheduler.missed.labels("manifold_freshness").inc()


def run_overlapped(exporter: Exporter) -> None:
    exporter.metrics.scheduler.overlapped.labels("valkey_ping").inc()


def clock_stepped(exporter: Exporter) -> None:
    exporter.metrics.scheduler.clock_steps.inc()


CHANGES: tuple[Callable[[Exporter], None], ...] = (
    record_outcome,
    record_transition,
    reload_changed_catalog,
    valkey_down,
    disable_a_check,
    valkey_up,
    api_answers,
    record_unreadable,
    pricing_endpoint_down,
    reload_refused,
    reload_to_fx_hours,
    market_transition,
    market_transition,
    run_started_late,
    run_missed,
    run_overlapped,
    clock_stepped,
    remove_and_add_checks,
    record_outcome,
)


@pytest.fixture
def still_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Process figures that hold still: two renders of a real process never agree on its CPU time,
    so byte-for-byte comparisons freeze them (they stay live: read on every scrape)."""

    def collect(_self: ProcessCollector) -> Iterator[Metric]:
        yield GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", value=9)
        yield CounterMetricFamily("process_cpu_seconds", "Total user and system CPU time.", 1.5)

    monkeypatch.setattr(ProcessCollector, "collect", collect)


@pytest.fixture
def quick_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A staleness bound of 50 ms and no duty bound (renders of this board take ~10 ms, which
    would space them 90 ms apart), so that tests wait little for a scrape to render."""
    monkeypatch.setattr(exposition_module, "STALE", 0.05)
    monkeypatch.setattr(exposition_module, "DUTY", 1.0)


def gunzip(body: bytes) -> bytes:
    """The body of one gzip member, which must be the whole of `body` (aiohttp's client and
    some browsers read only the first member)."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    plain = inflate.decompress(body) + inflate.flush()
    assert inflate.eof and not inflate.unused_data
    return plain


@asynccontextmanager
async def http_client(exporter: Exporter) -> AsyncIterator[test_utils.TestClient]:  # type: ignore[type-arg]
    app = build_web_app(StubDaemon(exporter), exporter.registry)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        yield client


async def scrape(client: test_utils.TestClient, accept: str, **headers: str) -> bytes:  # type: ignore[type-arg]
    """GET /metrics as Prometheus does (gzip accepted); the body, gunzipped."""
    headers = {"Accept-Encoding": "gzip"} | ({"Accept": accept} if accept else {}) | headers
    async with client.get("/metrics", headers=headers, auto_decompress=False) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        return gunzip(await response.read())


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
@pytest.mark.usefixtures("still_process")
async def test_served_bytes_are_prometheus_clients_after_every_kind_of_change(accept: str) -> None:
    """Outcomes, reloads, a disabled check, dependency flips, reload and scheduler figures: after
    each and a render, the served body (plain and gzipped) is what generate_latest gives;
    between changes, scrapes render nothing."""
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    for change in (None, *CHANGES):
        if change is not None:
            change(exporter)
        await exposition.render()
        served = await exposition.serve(accept)
        name = change.__name__ if change else "start"
        assert served.body == exporter.expected(accept), name
        assert served.content_type.startswith("application/openmetrics" if accept else "text/")
        renders = exposition.renders
        zipped = await exposition.serve(accept, gzip=True)
        assert zipped.gzipped and gunzip(zipped.body) == served.body, name
        assert (await exposition.serve(accept)).body == served.body
        assert exposition.renders == renders, f"{name}: a scrape of stored results rendered"


@pytest.mark.parametrize("created", [True, False])
@pytest.mark.usefixtures("still_process")
async def test_renders_run_in_the_worker_thread_not_on_the_loop(created: bool) -> None:
    """The stored families are collected and encoded off the event loop's thread; the board is
    read on the loop (its snapshot), so a render never sees the loop's state mid-change; with
    `_created` series left out too (the filter keeps the collector's snapshot)."""
    threads: dict[str, str] = {}

    class Watched(Collector):
        def collect(self) -> Iterator[Metric]:
            threads["collect"] = threading.current_thread().name
            yield GaugeMetricFamily("watched", "A gauge", value=1)
            yield CounterMetricFamily("watched_runs", "A counter", value=2, created=NOW)

        def snapshot(self) -> Collector:
            threads["snapshot"] = threading.current_thread().name
            return self

    registry = ExposedRegistry(created=created)
    registry.register(Watched())
    registry.store_registered()
    body = (await registry.exposition.serve(TEXT)).body
    assert b"watched 1.0" in body
    assert b"watched_runs_total 2.0" in body
    assert (b"watched_runs_created" in body) is created
    loop_thread = threading.current_thread().name
    assert threads["snapshot"] == loop_thread
    assert threads["collect"] != loop_thread


CREATED = (
    "runbook_check_runs_created",  # the accumulators'
    "runbook_check_duration_seconds_created",
    "quantops_exporter_scheduler_lag_seconds_created",
    "quantops_exporter_scheduler_missed_runs_created",  # prometheus_client's
    "quantops_exporter_event_loop_lag_seconds_created",  # prometheus_client's, live
)


def created_samples(body: bytes) -> set[str]:
    """The names of the `_created` samples in a body."""
    names = (line.split("{")[0].split()[0] for line in body.decode().splitlines() if line)
    return {name for name in names if name.endswith("_created")}


@pytest.mark.parametrize("created", [False, True])
@pytest.mark.usefixtures("still_process")
async def test_created_series_are_served_only_when_configured(
    created: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QUANTOPS_CREATED_SERIES through the render path: by default no `_created` sample in
    either kind, gzipped or not, stored or live, nor in a ?name[]= answer asking for them;
    configured, the accumulators' and prometheus_client's families carry them in each. The
    bodies are still prometheus_client's own rendering of the registry."""
    monkeypatch.setattr(exposition_module, "FILTERED_PER_SECOND", 1e6)  # one per kind, at once
    exporter = Exporter(make_generation(), created=created)
    record_outcome(exporter)
    exporter.metrics.scheduler.lag.labels("manifold_freshness").observe(0.2)
    exporter.metrics.scheduler.missed.labels("manifold_freshness").inc()
    async with http_client(exporter) as client:
        for accept in RENDER:
            await exporter.exposition.render()
            plain = await exporter.exposition.serve(accept)
            assert plain.body == exporter.expected(accept)
            gzipped = await scrape(client, accept)
            for body in (plain.body, gzipped):
                found = created_samples(body)
                if created:
                    assert set(CREATED) <= found, found
                else:
                    assert not found
                assert b"runbook_check_runs_total{" in body
                assert b"quantops_exporter_event_loop_lag_seconds_count" in body
            filtered = await exporter.exposition.serve(accept, names=CREATED)
            assert created_samples(filtered.body) == (set(CREATED) if created else set())


@pytest.mark.usefixtures("still_process", "quick_stale")
async def test_a_scrape_gets_the_board_before_a_change_or_after_it_then_after_it() -> None:
    """Over HTTP, both kinds in use: right after a change a scrape gets the board before it or
    after it, whole; a scrape more than STALE after it, the board after it."""
    exporter = Exporter(make_generation())
    async with http_client(exporter) as client:
        for accept in RENDER:
            assert await scrape(client, accept) == exporter.expected(accept)
        for change in CHANGES:
            before = {accept: exporter.expected(accept) for accept in RENDER}
            change(exporter)
            after = {accept: exporter.expected(accept) for accept in RENDER}
            for accept in RENDER:
                assert await scrape(client, accept) in (before[accept], after[accept])
            await asyncio.sleep(2 * exposition_module.STALE)
            for accept in RENDER:
                assert await scrape(client, accept) == after[accept], change.__name__


@pytest.mark.usefixtures("still_process", "quick_stale")
async def test_concurrent_scrapes_during_changes_see_only_whole_boards() -> None:
    """Eight scrapers (both kinds) while outcomes, reloads and flips land: every body parses,
    and every body is prometheus_client's rendering of the board at some moment, never a mix."""
    exporter = Exporter(make_generation())
    boards = {accept: {exporter.expected(accept)} for accept in RENDER}
    done = asyncio.Event()

    async def change() -> None:
        for step in range(30):
            CHANGES[step % len(CHANGES)](exporter)
            exporter.board.record(outcome("sessions_open", started_at=NOW + step))
            for accept in RENDER:
                boards[accept].add(exporter.expected(accept))
            await asyncio.sleep(0.01)
        await asyncio.sleep(2 * exposition_module.STALE)
        done.set()

    async def scraper(accept: str) -> list[bytes]:
        bodies = [await scrape(client, accept)]
        while not done.is_set():
            bodies.append(await scrape(client, accept))
        bodies.append(await scrape(client, accept))
        return bodies

    async with http_client(exporter) as client:
        accepts = [TEXT, OPENMETRICS] * 4
        _, *scraped = await asyncio.gather(change(), *(scraper(a) for a in accepts))
    assert sum(len(bodies) for bodies in scraped) > 50
    seen: dict[str, set[bytes]] = {accept: set() for accept in RENDER}
    for accept, bodies in zip(accepts, scraped, strict=True):
        assert bodies[-1] == exporter.expected(accept)
        seen[accept].update(bodies)
    for accept, bodies_seen in seen.items():
        assert len(bodies_seen) > 2  # scrapes saw the board change
        for body in bodies_seen:
            assert body in boards[accept]
            assert_whole(list(PARSE[accept](body.decode())))


def assert_whole(families: list[Metric]) -> None:
    """One catalog throughout: the same checks in every per-check family, one status each."""
    by_name = {family.name: family for family in families}
    checks = {s.labels["check"] for s in by_name["runbook_check_enabled"].samples}
    for name in ("runbook_check_ok", "runbook_check_interval_seconds", "runbook_check_status"):
        assert {s.labels["check"] for s in by_name[name].samples} == checks, name
    for check in checks:
        statuses = [
            s.value for s in by_name["runbook_check_status"].samples if s.labels["check"] == check
        ]
        assert len(statuses) == len(Status) and sum(statuses) <= 1


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counter_exposition(clock: Clock) -> tuple[Counter, exposition_module.Exposition]:
    """A stored counter and an exposition of it on `clock` (tell it of each change)."""
    registry = ExposedRegistry()
    counter = Counter("things", "Things", registry=registry)
    registry.store_registered()
    return counter, exposition_module.Exposition(registry, clock=clock)


# Every Accept header the issue saw rotated (a new body each, when four were kept), and more.
ROTATING_ACCEPTS = (
    "",
    "text/plain;version=0.0.4",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",
    "application/openmetrics-text;version=2.0.0",
    "application/openmetrics-text;version=1.0.7",
    "application/openmetrics-text",
)


async def test_a_burst_of_outcomes_and_rotating_asks_cost_one_render_per_stale() -> None:
    """Logic (injected clock): a thousand outcomes while a client rotates eleven Accept
    headers, within one STALE: one render (the first ask's, of both kinds in use), then the
    stored bytes; the first ask more than STALE after the burst renders once more."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    await exposition.serve(TEXT)
    await exposition.serve(OPENMETRICS)
    renders = exposition.renders
    for step in range(1000):
        counter.inc()
        exposition.changed()
        served = await exposition.serve(ROTATING_ACCEPTS[step % len(ROTATING_ACCEPTS)], gzip=True)
        assert served.content_type in (TEXT_KIND.content_type, OPENMETRICS_KIND.content_type)
        clock.now += exposition_module.STALE / 2000
    assert exposition.renders == renders
    clock.now += exposition_module.STALE
    for accept in ROTATING_ACCEPTS:
        assert b"things_total 1000.0" in gunzip((await exposition.serve(accept, gzip=True)).body)
    assert exposition.renders == renders + 1


async def test_with_nobody_scraping_changes_cost_no_render() -> None:
    """Logic (injected clock): changes with nobody asking render nothing (an idle daemon
    renders nothing); the next scrape, more than STALE after them, renders the board as it is
    and waits for it."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    await exposition.serve(TEXT)
    renders = exposition.renders
    for _ in range(100):
        counter.inc()
        exposition.changed()
        clock.now += 1
    await asyncio.sleep(0.05)
    assert exposition.renders == renders
    assert b"things_total 100.0" in (await exposition.serve(TEXT)).body
    assert exposition.renders == renders + 1 and exposition.scrape_renders == 2


async def test_a_scrape_serves_every_change_older_than_stale() -> None:
    """Logic (injected clock): a scrape may get a board that misses changes younger than
    STALE (and starts a render for the next one, unless one started within STALE), never one
    older: then it waits for a render."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    assert b"things_total 0.0" in (await exposition.serve(TEXT)).body
    counter.inc()
    exposition.changed()
    clock.now += exposition_module.STALE / 2
    assert b"things_total 0.0" in (await exposition.serve(TEXT)).body
    assert exposition.renders == 1  # the first scrape's; the last render started < STALE ago
    clock.now += exposition_module.STALE
    assert b"things_total 1.0" in (await exposition.serve(TEXT)).body
    assert exposition.scrape_renders == 2


async def test_a_flood_finds_the_next_render_made_in_the_background() -> None:
    """Logic (injected clock): a scraper asking often, changes pending but younger than STALE
    and the last render older than STALE: the ask is served at once and starts a render in
    the background, which the next ask gets without waiting."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    await exposition.serve(TEXT)
    clock.now += exposition_module.STALE
    counter.inc()
    exposition.changed()
    clock.now += exposition_module.STALE / 2
    assert b"things_total 0.0" in (await exposition.serve(TEXT)).body
    await asyncio.sleep(0.05)  # the background render finishes in the worker
    assert exposition.renders == 2 and exposition.scrape_renders == 1
    assert b"things_total 1.0" in (await exposition.serve(TEXT)).body
    assert exposition.renders == 2


async def test_a_change_during_a_render_is_rendered_before_a_flood_must_wait() -> None:
    """Logic (injected clock): a render that takes 50 ms, a change landing while it runs. The
    flood's background render comes STALE less that render's time after it started, so the
    change is rendered before it is STALE old and no scrape of the flood waits for it."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    first = asyncio.ensure_future(exposition.serve(TEXT))
    for _ in range(2):  # the scrape starts the render; the render takes its snapshot
        await asyncio.sleep(0)
    counter.inc()
    exposition.changed()
    clock.now += 0.05  # the render's time
    assert b"things_total 0.0" in (await first).body
    clock.now += exposition_module.STALE - 0.05 - 0.04  # the flood asks on
    assert b"things_total 0.0" in (await exposition.serve(TEXT)).body
    await asyncio.sleep(0.05)  # the background render it started finishes in the worker
    clock.now += 0.1  # the change is now more than STALE old
    assert b"things_total 1.0" in (await exposition.serve(TEXT)).body
    assert exposition.renders == 2 and exposition.scrape_renders == 1


async def test_on_a_board_slow_to_render_renders_keep_within_duty() -> None:
    """Logic (injected clock): renders that take 0.5 s (10,000 instruments) start no sooner
    than nine render times apart, and a scrape may miss changes up to that gap and a render
    old, never older: a flood on a big board renders at most DUTY of the time."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    first = asyncio.ensure_future(exposition.serve(TEXT))
    for _ in range(2):
        await asyncio.sleep(0)
    clock.now += 0.5  # the render's time
    await first
    gap = 0.5 * (1 - exposition_module.DUTY) / exposition_module.DUTY
    counter.inc()
    exposition.changed()
    clock.now += gap - 0.6  # changes pending, the last render started gap - 0.1 ago
    assert b"things_total 0.0" in (await exposition.serve(TEXT)).body
    await asyncio.sleep(0.05)
    assert exposition.renders == 1  # none started before the gap
    clock.now += 0.2  # the gap is past: the flood starts one in the background
    assert b"things_total 0.0" in (await exposition.serve(TEXT)).body
    await asyncio.sleep(0.05)
    assert exposition.renders == 2 and exposition.scrape_renders == 1
    assert b"things_total 1.0" in (await exposition.serve(TEXT)).body


@pytest.mark.usefixtures("still_process")
async def test_a_regular_scraper_gets_the_board_as_it_was_when_it_asked() -> None:
    """Real time: a scraper every 0.3 s (longer than STALE here) while outcomes land every
    20 ms and a flood of other clients rotates Accept headers and User-Agents: every one of
    the scraper's asks shows a board from within the staleness bound of the ask: STALE, or
    more when renders take long (a loaded machine), as the exposition says at the ask (the
    issue saw seconds of a 1 s bound)."""
    exporter = Exporter(make_generation())
    boards: list[tuple[float, bytes]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def outcomes() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            exporter.board.record(outcome("sessions_open", started_at=NOW + step))
            boards.append((loop.time(), exporter.expected(OPENMETRICS)))
            await asyncio.sleep(0.02)

    async def flood(client: test_utils.TestClient) -> None:  # type: ignore[type-arg]
        step = 0
        while not stop.is_set():
            step += 1
            accept = ROTATING_ACCEPTS[step % len(ROTATING_ACCEPTS)]
            await scrape(client, accept, **{"User-Agent": f"scraper/{step}"})

    async with http_client(exporter) as client:
        tasks = [asyncio.create_task(outcomes()), asyncio.create_task(flood(client))]
        try:
            for _ in range(8):
                await asyncio.sleep(0.3)
                asked, bound = loop.time(), exporter.exposition.staleness_bound
                body = await scrape(client, OPENMETRICS, **{"User-Agent": "Prometheus/2.53"})
                # The board shown was still the board at `asked - bound`: the one after it
                # came later (or none has yet).
                shown = max(i for i, (_t, board) in enumerate(boards) if board == body)
                replaced = boards[shown + 1][0] if shown + 1 < len(boards) else float("inf")
                assert replaced >= asked - bound, (asked - replaced, bound)
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def test_a_dependency_flip_shows_at_the_next_scrape() -> None:
    """Dependency health has no change hook: a scrape notices the flip and waits for a render."""
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    await exposition.serve(TEXT)
    exporter.health.mark(Dependency.API, False)
    assert b'runbook_dependency_up{dependency="api"} 0.0' in (await exposition.serve(TEXT)).body
    exporter.health.mark(Dependency.API, True)
    assert b'runbook_dependency_up{dependency="api"} 1.0' in (await exposition.serve(TEXT)).body


async def test_one_endpoint_flip_shows_at_the_next_scrape_though_its_dependency_stays_up() -> None:
    """Endpoint health has no change hook either: a scrape notices one endpoint going down while
    another keeps its dependency up, and waits for a render."""
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    api_answers(exporter)
    await exposition.serve(TEXT)
    pricing_endpoint_down(exporter)
    body = (await exposition.serve(TEXT)).body
    assert b'runbook_dependency_up{dependency="api"} 1.0' in body
    endpoint = f'dependency="api",endpoint="{PRICING_PATH}"'
    assert f"runbook_dependency_endpoint_up{{{endpoint}}} 0.0".encode() in body


def test_the_board_snapshot_keeps_endpoints_and_unreadable_items_as_they_were() -> None:
    """The snapshot taken on the loop, collected later in the worker, shows the endpoints'
    health and what the runs could not read as they were when it was taken."""
    exporter = Exporter(make_generation())
    api_answers(exporter)
    record_unreadable(exporter)
    snapshot = exporter.metrics.collector.snapshot()
    pricing_endpoint_down(exporter)
    exporter.board.record(outcome("spread_guard"))
    families = {family.name: family for family in snapshot.collect()}
    endpoints = families["runbook_dependency_endpoint_up"].samples
    assert {(s.labels["endpoint"], s.value) for s in endpoints} == {
        ("/api/trading/mode", 1.0),
        (PRICING_PATH, 1.0),
    }
    unreadable = families["runbook_check_unreadable"].samples
    assert [(s.labels["check"], s.labels["item"]) for s in unreadable] == [
        ("spread_guard", PRICING_PATH)
    ]


@pytest.mark.usefixtures("still_process")
async def test_a_market_transition_shows_at_the_next_scrape() -> None:
    """The market's next open and close have no change hook and no outcome tells of them: the
    first scrape after the close renders (the next close a week on), the ones after do not."""
    exporter = Exporter(make_generation(market_hours="fx"))
    exposition = exporter.exposition
    before = (await exposition.serve(TEXT)).body
    renders = exposition.renders
    assert (await exposition.serve(TEXT)).body == before and exposition.renders == renders
    market_transition(exporter)  # Friday 17:00 New York
    after = (await exposition.serve(TEXT)).body
    assert exposition.renders == renders + 1 and after == exporter.expected(TEXT)
    closes = {
        body: next(
            f.samples[0].value
            for f in parse_text(body.decode())
            if f.name == "runbook_market_next_close_timestamp_seconds"
        )
        for body in (before, after)
    }
    assert closes[before] == exporter.clock.now
    assert closes[after] == exporter.clock.now + 7 * 86_400
    assert (await exposition.serve(TEXT)).body == after and exposition.renders == renders + 1


async def test_live_families_are_read_per_scrape_at_most_every_live_max_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What is registered after build_registry (the HTTP server's metrics) and the process
    figures are read by scrapes, without a render of the stored families; scrapes within
    LIVE_MAX_AGE of the last reading share it (a flood of scrapes must not read /proc each)."""
    now = [1000.0]
    monkeypatch.setattr(exposition_module.time, "monotonic", lambda: now[0])
    exporter = Exporter(make_generation())
    connections = Counter("test_connections", "Connections", registry=exporter.registry)
    exposition = exporter.exposition
    first = (await exposition.serve(OPENMETRICS)).body
    renders = exposition.renders
    connections.inc()
    now[0] += LIVE_MAX_AGE / 2
    shared = (await exposition.serve(OPENMETRICS)).body
    now[0] += LIVE_MAX_AGE
    second = (await exposition.serve(OPENMETRICS)).body
    assert exposition.renders == renders
    assert b"test_connections_total 0.0" in first and shared == first
    assert b"test_connections_total 1.0" in second
    assert second.endswith(b"# EOF\n") and second.count(b"# EOF") == 1
    names = [family.name for family in parse_openmetrics(second.decode())]
    assert names.index("process_cpu_seconds") > names.index("runbook_check_ok")
    assert names[-1] == "test_connections"


def lines_of(body: bytes) -> list[bytes]:
    """A body's lines, sorted: a restricted registry's families come in a set's order."""
    return sorted(body.splitlines())


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
@pytest.mark.usefixtures("still_process")
async def test_names_restrict_the_families_as_prometheus_client_does(
    accept: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """?name[]=... is filtered from the last render's families and the live ones: the families
    prometheus_client's restricted registry gives, whole families or single sample names
    (a histogram's _count), from the board and from the live part."""
    monkeypatch.setattr(exposition_module, "FILTERED_PER_SECOND", 1e9)
    exporter = Exporter(make_generation())
    record_outcome(exporter)
    for names in (
        ["runbook_check_ok", "process_open_fds"],
        ["runbook_check_duration_seconds_count"],
        ["runbook_freshness_last_update_timestamp_seconds", "no_such_metric"],
    ):
        served = await exporter.exposition.serve(accept, names=names)
        expected = RENDER[accept](exporter.registry.restricted_registry(names))
        assert not served.gzipped
        assert lines_of(served.body) == lines_of(expected), names


@pytest.mark.usefixtures("still_process")
async def test_new_filterings_beyond_the_rate_are_refused_repeated_ones_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logic (the exposition's clock held still): names from the wire cost a filtering each: a
    burst of new ones gets Busy (429 over HTTP, with Retry-After) beyond FILTERED_PER_SECOND;
    names already filtered since the last render are served again without filtering."""
    monkeypatch.setattr(exposition_module.time, "monotonic", lambda: 1000.0)
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    await exposition.serve(TEXT, names=["runbook_check_ok"])
    again = await exposition.serve(TEXT, names=["runbook_check_ok"])
    assert b"runbook_check_ok" in again.body
    with pytest.raises(Busy) as busy:
        await exposition.serve(TEXT, names=["runbook_check_expected"])
    assert busy.value.retry_after == pytest.approx(1 / exposition_module.FILTERED_PER_SECOND)
    async with (
        http_client(exporter) as client,
        client.get("/metrics", params={"name[]": "runbook_check_status"}) as response,
    ):
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"


@pytest.mark.usefixtures("still_process")
async def test_a_plain_registry_is_rendered_whole_on_every_scrape() -> None:
    """A registry not built by build_registry: nothing stored, every scrape renders it."""
    registry = CollectorRegistry()
    counter = Counter("things", "Things", registry=registry)
    exposition = exposition_of(registry)
    counter.inc()
    assert (await exposition.serve(TEXT)).body == generate_latest(registry)
    counter.inc()
    assert (await exposition.serve(TEXT)).body == generate_latest(registry)


class Flaky(Collector):
    """A stored collector that can be made to fail."""

    broken = False

    def collect(self) -> Iterator[Metric]:
        if self.broken:
            raise RuntimeError("collector failed")
        yield GaugeMetricFamily("flaky", "A gauge", value=1)


async def test_a_failing_render_fails_the_scrape_as_before() -> None:
    """A collector that raises fails the scrape that waits for its render (prometheus_client's
    handler answered 500 too); the next render that works is served."""
    clock = Clock()
    registry = ExposedRegistry()
    flaky = Flaky()
    registry.register(flaky)
    registry.store_registered()
    exposition = exposition_module.Exposition(registry, clock=clock)
    assert (await exposition.serve(TEXT)).body.startswith(b"# HELP flaky A gauge\n")
    flaky.broken = True
    exposition.changed()
    clock.now += 2 * exposition_module.STALE
    with pytest.raises(RuntimeError):
        await exposition.serve(TEXT)
    flaky.broken = False
    assert (await exposition.serve(TEXT)).body == generate_latest(registry)


_NAMES = st.sampled_from(["up", "a_b", "runbook_x", "x:y", "é_metric", "_", "9lives", "a.b"])
_LABEL_NAMES = st.sampled_from(["check", "le", "a_b", "x:y", "ünï", "__name", "0k", "a.b"])
_TEXT = st.text(max_size=12) | st.sampled_from(["\\", '"', "\n", 'a"b\\c\nd', ""])
_VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20)


@st.composite
def _families(draw: st.DrawFn) -> list[Metric]:
    families = []
    for index in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["gauge", "counter", "unknown", "info", "stateset"]))
        name = f"{draw(_NAMES)}_{index}"
        unit = draw(st.sampled_from(["", "seconds"])) if kind in ("gauge", "unknown") else ""
        family = Metric(f"{name}_{unit}" if unit else name, draw(_TEXT), kind, unit)
        sample_name = {"counter": name + "_total", "info": name + "_info"}.get(kind, name)
        for _ in range(draw(st.integers(0, 3))):
            labels = draw(st.dictionaries(_LABEL_NAMES, _TEXT, max_size=3))
            stamp = draw(st.none() | st.floats(0, 2e9, allow_nan=False))
            exemplar = None
            if kind == "counter" and draw(st.booleans()):
                exemplar = Exemplar({"trace": draw(_TEXT)}, 1.0, None)
            family.add_sample(
                f"{sample_name}_{unit}" if unit else sample_name,
                labels,
                draw(_VALUES),
                stamp,
                exemplar,
            )
        families.append(family)
    return families


@settings(max_examples=500)
@given(families=_families(), escaping=st.sampled_from(["underscores", "allow-utf-8"]))
def test_the_fast_openmetrics_encoder_writes_what_prometheus_client_writes(
    families: list[Metric], escaping: str
) -> None:
    """Names that need escaping, quotes, backslashes and newlines in help and label values,
    units, timestamps, exemplars, NaN and infinities: the same bytes, or the same error."""
    collector = Families(families)
    try:
        expected: bytes | type[BaseException] = generate_openmetrics(collector, escaping=escaping)
    except (ValueError, TypeError) as err:
        expected = type(err)
    try:
        got: bytes | type[BaseException] = fast_openmetrics(collector, escaping=escaping)
    except (ValueError, TypeError) as err:
        got = type(err)
    assert got == expected


def test_every_accept_header_is_negotiated_to_one_of_two_kinds() -> None:
    """What Prometheus sends gets OpenMetrics 1.0.0 by the fast encoder; every OpenMetrics
    version and escaping gets the same (said so in the Content-Type: the registry's names are
    all legacy, so no escaping would change them but dots'); text in any version, 0.0.4."""
    prometheus = (  # Prometheus 2.x's scrape Accept header
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    assert negotiate(prometheus) is OPENMETRICS_KIND
    assert OPENMETRICS_KIND.content_type.endswith(
        "version=1.0.0; charset=utf-8; escaping=underscores"
    )
    for accept in ROTATING_ACCEPTS:
        kind = negotiate(accept)
        om = accept.startswith("application/openmetrics-text")
        assert kind is (OPENMETRICS_KIND if om else TEXT_KIND), accept
    assert negotiate("application/openmetrics-text;version=0.0.1") is TEXT_KIND
    assert {negotiate(a) for a in ROTATING_ACCEPTS} == {TEXT_KIND, OPENMETRICS_KIND}
