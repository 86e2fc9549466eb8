"""/metrics from stored bytes: what is served is byte for byte what prometheus_client renders of
the same registry, after every kind of change; scrapes during changes only ever see whole boards;
a burst of outcomes costs one render, a scrape of stored results none."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
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
from quantops_exporter.checks.verdict import (
    Freshness,
    Measure,
    Reading,
    Reason,
    Source,
    Status,
    Verdict,
)
from quantops_exporter.daemon import DebugRun, ReloadResult
from quantops_exporter.exposition import (
    LIVE_MAX_AGE,
    ExposedRegistry,
    exposition_of,
    fast_openmetrics,
)
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

    def __init__(self, generation: Generation) -> None:
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
def quick_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Background renders within milliseconds of a change, so that tests wait little."""
    monkeypatch.setattr(exposition_module, "MIN_GAP", 0.01)
    monkeypatch.setattr(exposition_module, "DUTY", 0.5)


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


async def scrape(client: test_utils.TestClient, accept: str) -> bytes:  # type: ignore[type-arg]
    """GET /metrics as Prometheus does (gzip accepted); the body, gunzipped."""
    headers = {"Accept-Encoding": "gzip"} | ({"Accept": accept} if accept else {})
    async with client.get("/metrics", headers=headers, auto_decompress=False) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        return gunzip(await response.read())


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
@pytest.mark.usefixtures("still_process")
def test_served_bytes_are_prometheus_clients_after_every_kind_of_change(accept: str) -> None:
    """Outcomes, reloads, a disabled check, dependency flips, reload and scheduler figures: after
    each, the served body (plain and gzipped) is what generate_latest gives; between changes,
    scrapes render nothing."""
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    for change in (None, *CHANGES):
        if change is not None:
            change(exporter)
        served = exposition.serve(accept)
        name = change.__name__ if change else "start"
        assert served.body == exporter.expected(accept), name
        assert served.content_type.startswith("application/openmetrics" if accept else "text/")
        renders = exposition.renders
        zipped = exposition.serve(accept, gzip=True)
        assert zipped.gzipped and gunzip(zipped.body) == served.body, name
        assert exposition.serve(accept).body == served.body
        assert exposition.renders == renders, f"{name}: a scrape of stored results rendered"


@pytest.mark.usefixtures("still_process", "quick_renders")
async def test_scrapes_serve_each_change_once_rendered_in_the_background() -> None:
    """Over HTTP, both formats in use: right after a change a scrape gets the board before it or
    after it, whole; once the background render ran, the board after it."""
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
            await exporter.exposition.settled()
            for accept in RENDER:
                assert await scrape(client, accept) == after[accept], change.__name__


@pytest.mark.usefixtures("still_process", "quick_renders")
async def test_concurrent_scrapes_during_changes_see_only_whole_boards() -> None:
    """Eight scrapers (both formats) while outcomes, reloads and flips land: every body parses,
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
            await asyncio.sleep(0.002)
        await exporter.exposition.settled()
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


@pytest.mark.usefixtures("still_process")
async def test_a_burst_of_outcomes_costs_one_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thousand outcomes in a burst, a scraper polling: one background render (not a
    thousand), after which the served body is the board after the last of them. (STALE is
    a minute here: a burst slower than a second, as under coverage on a loaded CI machine,
    would otherwise count the poller as gone, which is another test's subject.)"""
    monkeypatch.setattr(exposition_module, "STALE", 60.0)
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    for _ in range(2):  # a format in use, by a scraper that keeps asking
        exposition.serve(OPENMETRICS, scraper="poller")
    renders = exposition.renders
    for i in range(1000):
        exporter.board.record(outcome("valkey_ping", started_at=NOW + i))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await exposition.settled()
    assert exposition.renders - renders == 1
    assert exposition.serve(OPENMETRICS, scraper="poller").body == exporter.expected(OPENMETRICS)
    assert exposition.renders - renders == 1


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


async def test_with_nobody_scraping_changes_cost_no_render() -> None:
    """Logic (injected clock, a running loop): once the only scraper has stopped asking, changes
    schedule no render (an idle daemon renders nothing); the next scrape, more than STALE after
    them, renders the board as it is."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    exposition.serve(TEXT, scraper="prometheus")
    clock.now += 15
    exposition.serve(TEXT, scraper="prometheus")  # every 15 s
    renders = exposition.renders
    clock.now += 2 * 15 + exposition_module.STALE + 1  # two asks missed: gone
    for _ in range(100):
        counter.inc()
        exposition.changed()
    assert not exposition._due()
    await exposition.settled()
    assert exposition.renders == renders
    clock.now += exposition_module.STALE + 0.1
    assert b"things_total 100.0" in exposition.serve(TEXT, scraper="prometheus").body
    assert exposition.renders == renders + 1 and exposition.scrape_renders == 2


async def test_a_scrape_serves_every_change_older_than_stale() -> None:
    """Logic (injected clock, a running loop): an ask nobody predicted (a curl) may get a board
    that misses changes younger than STALE, never one older: then the scrape renders."""
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    assert b"things_total 0.0" in exposition.serve(TEXT, scraper="curl").body
    counter.inc()
    exposition.changed()
    clock.now += exposition_module.STALE / 2
    assert b"things_total 0.0" in exposition.serve(TEXT, scraper="curl").body
    assert exposition.scrape_renders == 1  # the first scrape's, of a format without bytes
    clock.now += exposition_module.STALE
    assert b"things_total 1.0" in exposition.serve(TEXT, scraper="curl").body
    assert exposition.scrape_renders == 2


async def test_on_a_board_slow_to_render_the_bound_is_the_duty_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logic (injected clock; perf_counter says each render took 0.1 s, so the duty gap is
    4.9 s): a scrape may miss changes up to the gap old, never older, so that a flood of
    scrapes on a big board renders at the duty bound rather than every STALE seconds."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(exposition_module.time, "perf_counter", lambda: next(ticks) * 0.1)
    clock = Clock()
    counter, exposition = counter_exposition(clock)
    exposition.serve(TEXT, scraper="flood")  # renders: 0.1 s by perf_counter
    gap = 0.1 * (1 - exposition_module.DUTY) / exposition_module.DUTY
    counter.inc()
    exposition.changed()
    clock.now += gap - 0.1
    assert b"things_total 0.0" in exposition.serve(TEXT, scraper="curl").body
    clock.now += 0.2
    assert b"things_total 1.0" in exposition.serve(TEXT, scraper="curl").body


def test_cadence_plans_a_render_just_before_each_scrapers_next_ask() -> None:
    """Logic: two Prometheus replicas every 15 s, 5 s apart. The render for the next ask comes
    `lead` before it, once: after it started, the plan moves to the other replica's ask, then
    to the next round. A scraper seen once has no cadence; one that missed two asks is gone."""
    cadence, lead = exposition_module.Cadence(), 0.3
    for t in (0.0, 15.0):
        cadence.asked("a", t)
        cadence.asked("b", t + 5)
    cadence.asked("curl", 21.0)
    now = 21.0
    assert cadence.next_render(now, rendered_at=20.0, lead=lead) == 30 - lead
    assert cadence.next_render(now, rendered_at=30 - lead, lead=lead) == 35 - lead
    assert cadence.next_render(now, rendered_at=35 - lead, lead=lead) == 45 - lead
    now = 20 + 2 * 15 + exposition_module.STALE + 0.1  # b gone; a too (its last ask was at 15)
    assert cadence.next_render(now, rendered_at=35 - lead, lead=lead) is None
    cadence.asked("a", now)  # back: seen once again, no cadence yet
    assert cadence.next_render(now, rendered_at=35 - lead, lead=lead) is None


@pytest.mark.usefixtures("still_process", "quick_renders")
async def test_a_regular_scraper_gets_one_render_per_ask_made_before_it() -> None:
    """Logic, real time (the loop's timers): a scraper every 1.5 s (longer than STALE) while
    outcomes land every 50 ms. After the first two asks, every ask is served a background render
    made just before it (no scrape renders; one render per ask, not one per outcome), and shows
    the board as it was at most LEAD + a render before the ask. (Quick renders: under load a
    render of this board took 30 ms, whose 2 % duty gap, 1.5 s, is the scraper's interval.)"""
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    boards: list[tuple[float, bytes]] = []
    stop = asyncio.Event()

    async def outcomes() -> None:
        loop = asyncio.get_running_loop()
        step = 0
        while not stop.is_set():
            step += 1
            exporter.board.record(outcome("sessions_open", started_at=NOW + step))
            boards.append((loop.time(), exporter.expected(OPENMETRICS)))
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(outcomes())
    loop = asyncio.get_running_loop()
    try:
        for _ in range(2):
            exposition.serve(OPENMETRICS, scraper="prometheus")
            await asyncio.sleep(1.5)
        scrape_renders, renders = exposition.scrape_renders, [exposition.renders]
        for _ in range(4):
            asked = loop.time()
            body = exposition.serve(OPENMETRICS, scraper="prometheus").body
            recent = [b for t, b in boards if t >= asked - 1.0]
            assert body in recent, "the ask was served a board older than a second"
            await asyncio.sleep(1.5)
            renders.append(exposition.renders)
    finally:
        stop.set()
        await writer
    assert exposition.scrape_renders == scrape_renders
    assert [b - a for a, b in itertools.pairwise(renders)] == [1, 1, 1, 1]


async def test_a_dependency_flip_shows_at_the_next_scrape() -> None:
    """Dependency health has no change hook: a scrape notices the flip and renders at once."""
    exporter = Exporter(make_generation())
    exposition = exporter.exposition
    exposition.serve(TEXT)
    exporter.health.mark(Dependency.API, False)
    assert b'runbook_dependency_up{dependency="api"} 0.0' in exposition.serve(TEXT).body
    exporter.health.mark(Dependency.API, True)
    assert b'runbook_dependency_up{dependency="api"} 1.0' in exposition.serve(TEXT).body


@pytest.mark.usefixtures("still_process")
def test_a_market_transition_shows_at_the_next_scrape() -> None:
    """The market's next open and close have no change hook and no outcome tells of them: the
    first scrape after the close renders (the next close a week on), the ones after do not."""
    exporter = Exporter(make_generation(market_hours="fx"))
    exposition = exporter.exposition
    before = exposition.serve(TEXT).body
    renders = exposition.renders
    assert exposition.serve(TEXT).body == before and exposition.renders == renders
    market_transition(exporter)  # Friday 17:00 New York
    after = exposition.serve(TEXT).body
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
    assert exposition.serve(TEXT).body == after and exposition.renders == renders + 1


def test_live_families_are_read_per_scrape_at_most_every_live_max_age(
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
    first = exposition.serve(OPENMETRICS).body
    renders = exposition.renders
    connections.inc()
    now[0] += LIVE_MAX_AGE / 2
    shared = exposition.serve(OPENMETRICS).body
    now[0] += LIVE_MAX_AGE
    second = exposition.serve(OPENMETRICS).body
    assert exposition.renders == renders
    assert b"test_connections_total 0.0" in first and shared == first
    assert b"test_connections_total 1.0" in second
    assert second.endswith(b"# EOF\n") and second.count(b"# EOF") == 1
    names = [family.name for family in parse_openmetrics(second.decode())]
    assert names.index("process_cpu_seconds") > names.index("runbook_check_ok")
    assert names[-1] == "test_connections"


@pytest.mark.usefixtures("still_process")
def test_names_restrict_the_families_as_prometheus_client_does() -> None:
    """?name[]=... is rendered then, from the registry."""
    exporter = Exporter(make_generation())
    names = ["runbook_check_ok", "process_open_fds"]
    served = exporter.exposition.serve(TEXT, names=names)
    assert served.body == generate_latest(exporter.registry.restricted_registry(names))


@pytest.mark.usefixtures("still_process")
def test_a_plain_registry_is_rendered_whole_on_every_scrape() -> None:
    """A registry not built by build_registry: nothing stored, every scrape renders it."""
    registry = CollectorRegistry()
    counter = Counter("things", "Things", registry=registry)
    exposition = exposition_of(registry)
    counter.inc()
    assert exposition.serve(TEXT).body == generate_latest(registry)
    counter.inc()
    assert exposition.serve(TEXT).body == generate_latest(registry)


class Flaky(Collector):
    """A stored collector that can be made to fail."""

    broken = False

    def collect(self) -> Iterator[Metric]:
        if self.broken:
            raise RuntimeError("collector failed")
        yield GaugeMetricFamily("flaky", "A gauge", value=1)


def test_a_failing_render_fails_the_scrape_as_before() -> None:
    """A collector that raises fails the scrape (prometheus_client's handler answered 500 too);
    the next render that works is served."""
    registry = ExposedRegistry()
    flaky = Flaky()
    registry.register(flaky)
    registry.store_registered()
    exposition = registry.exposition
    assert exposition.serve(TEXT).body.startswith(b"# HELP flaky A gauge\n")
    flaky.broken = True
    exposition.changed()
    with pytest.raises(RuntimeError):
        exposition.serve(TEXT)
    flaky.broken = False
    assert exposition.serve(TEXT).body == generate_latest(registry)


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
    collector = exposition_module._Families(families)
    try:
        expected: bytes | type[BaseException] = generate_openmetrics(collector, escaping=escaping)
    except (ValueError, TypeError) as err:
        expected = type(err)
    try:
        got: bytes | type[BaseException] = fast_openmetrics(collector, escaping=escaping)
    except (ValueError, TypeError) as err:
        got = type(err)
    assert got == expected


def test_prometheus_negotiates_the_fast_encoder() -> None:
    """What Prometheus sends selects fast_openmetrics; other versions and escapings do not."""
    prometheus = (  # Prometheus 2.x's scrape Accept header
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    encoder, content_type = exposition_module.choose_encoder(prometheus)
    assert getattr(encoder, "func", None) is fast_openmetrics
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    dots = "application/openmetrics-text;version=1.0.0;escaping=dots"
    assert getattr(exposition_module.choose_encoder(dots)[0], "func", None) is not fast_openmetrics
