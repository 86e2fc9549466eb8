"""/metrics from stored bytes, rendered off the event loop when a scrape needs them.

Stored and live
    `ExposedRegistry` keeps its collectors in registration order. Those registered before
    `store_registered()` are *stored*: they change only when the exposition is told so
    (`changed()`), so a render turns them into bytes, per kind (encoding.py: text 0.0.4 or
    OpenMetrics 1.0.0, whatever the Accept header), with a gzip copy, served as they are.
    Those registered after are *live* (process_*, the HTTP server's counters, the loop's lag):
    they change by themselves, so their few samples are rendered by scrapes (at most every
    LIVE_MAX_AGE seconds: a flood of scrapes shares one reading of /proc) and appended. Stored
    first, then live, is registration order: a body is byte for byte what prometheus_client's
    own generate_latest gives for the same registry.

Invalidation
    `changed()` moves a version on. The board calls it for every outcome and every new catalog;
    the metric objects call it for updates the board does not see (scheduler lag, missed runs,
    clock steps, reload results). State without a change hook is *probed* (dependency health,
    the thresholds, the market's next open and close): each scrape compares it with what the
    last render read, and waits for a render when it moved.

When a render runs: only for a scrape
    A scrape serves the last render if every change older than STALE is in it; otherwise it
    waits for a render (the one under way, or one it starts). A scrape that finds younger
    changes pending starts a render in the background if none started lately, without waiting
    for it: a flood of scrapes finds the next ones rendered, about one render a second (the
    next one starts a render's time before STALE is up, so that a change landing while a
    render runs is shown before it is STALE old). Nobody scraping, no render; Prometheus every
    15 s, one render per scrape. A render renders every kind asked for in the last FORGET
    seconds, so whatever the clients rotate (kinds, User-Agents, addresses) costs no more.
    On a board slow to render renders keep within DUTY of the time: the next one starts no
    sooner than 9 render times after the last, and the bound is that gap and a render instead
    of STALE (10,000 instruments: ~5 s; 1,000: the bound stays STALE).

Off the loop, whole
    A render takes what every stored collector shows in one synchronous step on the loop, so no
    outcome, reload or health flip lands in the middle of it: the board's `snapshot()` (copies
    of references: outcomes are immutable) and prometheus_client's counters and histograms,
    collected (their size grows with the checks, not the instruments: ~2 ms). The board's
    thousands of samples are built, every kind encoded and gzipped in the worker thread
    (worker.py). When it is done, one reference per kind is swapped; a scrape reads it once.

?name[]=
    Filtered from what the collectors show (a snapshot, as for a render) as prometheus_client
    filters a registry, in the worker, served without gzip, kept for the names asked until the
    next change; at most FILTERED_PER_SECOND new filterings a second, more get `Busy` (the
    handler answers 429). Renders keep only bytes: at 10,000 instruments the families of the
    last render were ~15 MB more to keep.
"""

from __future__ import annotations

import asyncio
import copy
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from quantops_exporter.encoding import (
    KINDS,
    Collectors,
    Families,
    Kind,
    gzip_compressor,
    negotiate,
)
from quantops_exporter.worker import off_loop

log = structlog.get_logger("quantops_exporter.exposition")

STALE = 1.0  # seconds: a scrape serves every change older than this (else it waits for it)
DUTY = 0.1  # the share of the time renders may take: on a board slow to render, the bound grows
FORGET = 600.0  # a kind nobody asked for in this long is no longer rendered
LIVE_MAX_AGE = 0.1  # seconds a rendering of the live part (process_*, HTTP server) is reused
FILTERED_PER_SECOND = 10.0  # new ?name[]= filterings a second, at most

Probe = Callable[[], object]


class ExposedRegistry(CollectorRegistry):
    """A registry served by its `exposition`: it knows the order of its collectors, and which of
    them are stored (rendered when told of a change) and which live (rendered per scrape)."""

    def __init__(self, *, created: bool = True) -> None:
        super().__init__(auto_describe=True)
        self._order: list[Collector] = []
        self._stored: frozenset[Collector] = frozenset()
        # `created=False` leaves out the `_created` samples of counters and histograms, as
        # prometheus_client's disable_created_metrics() does, for this registry alone.
        self._shown: dict[Collector, Collector] = {}
        self._created = created
        self.exposition = Exposition(self, live_max_age=LIVE_MAX_AGE)

    def register(self, collector: Collector) -> None:
        """Register `collector` after the others (live unless `store_registered` follows)."""
        shown = collector if self._created else _WithoutCreated(collector)
        super().register(shown)
        self._shown[collector] = shown
        self._order.append(shown)

    def unregister(self, collector: Collector) -> None:
        """Remove `collector`."""
        shown = self._shown.pop(collector)
        super().unregister(shown)
        self._order.remove(shown)

    def store_registered(self) -> None:
        """Render every collector registered so far only when the exposition is told of a change."""
        self._stored = frozenset(self._order)

    def split(self) -> tuple[list[Collector], list[Collector]]:
        """(stored, live) collectors, in registration order: the stored ones that lead, then the
        rest, all live (a stored collector after a live one is rendered live: order first)."""
        order = list(self._order)
        lead = 0
        while lead < len(order) and order[lead] in self._stored:
            lead += 1
        return order[:lead], order[lead:]


@dataclass(frozen=True, slots=True)
class Served:
    """One /metrics answer: its content type, its body, whether the body is gzipped."""

    content_type: str
    body: bytes
    gzipped: bool


class Busy(Exception):
    """Too many new ?name[]= filterings: retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many filtered scrapes; retry in {retry_after:.1f}s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Stored:
    """The stored families in one kind, rendered whole at one version."""

    version: int
    body: bytes  # OpenMetrics: without its "# EOF" (the live part ends the body)
    gzip_head: bytes  # `body` gzipped, flushed to a byte boundary but not finished
    gzip_rest: zlib._Compress  # the compressor after `body`: a copy per scrape adds the live part


@dataclass(frozen=True, slots=True)
class _Render:
    """What one render made: every kind's bytes."""

    version: int
    started: float  # by the exposition's clock
    stored: dict[Kind, _Stored]


class Exposition:
    """The bytes /metrics serves for one registry (see the module docstring)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] | None = None,
        live_max_age: float = 0.0,
    ) -> None:
        self._registry = registry
        self._clock = clock or time.monotonic
        self._live_max_age = live_max_age
        self._version = 0
        self._pending_since: float | None = None  # the first change the last render misses
        self._newer_since: float | None = None  # the first change after a render's snapshot
        self._probes: tuple[Probe, ...] = ()
        self._probed: tuple[object, ...] | None = None  # what the probes read at the last render
        self._asked: dict[Kind, float] = {}  # when each kind was last asked for
        self._last: _Render | None = None
        self._rendering: asyncio.Future[_Render] | None = None
        self._render_started = float("-inf")
        self._took = 0.0  # how long the last render took, by the clock (the worker's queue too)
        self._live: dict[Kind, tuple[float, bytes]] = {}  # (rendered at, the live part)
        self._filtered: dict[tuple[Kind, tuple[str, ...]], tuple[object, bytes]] = {}
        self._next_filtering = float("-inf")
        self.renders = 0  # how many renders ran (tests and the benchmark count them)
        self.scrape_renders = 0  # ... of which a scrape waited for

    def probe(self, *probes: Probe) -> None:
        """Also watch state that has no change hook: each scrape compares what `probes` return
        with what they returned at the last render."""
        self._probes += probes

    def changed(self) -> None:
        """Something stored changed: the next scrape more than STALE from now shows it."""
        self._version += 1
        if self._pending_since is None:
            self._pending_since = self._clock()
        if self._newer_since is None:
            self._newer_since = self._clock()

    async def serve(
        self, accept: str = "", *, gzip: bool = False, names: Sequence[str] = ()
    ) -> Served:
        """The body for a scrape that sent `accept` (the Accept header) and accepts gzip or not;
        `names` (?name[]=...) restricts the families as prometheus_client does."""
        kind = negotiate(accept)
        now = self._clock()
        if names:
            return Served(kind.content_type, await self._filter(kind, names, now), False)
        self._asked[kind] = now
        if self._probe() != self._probed:
            self._version += 1  # it moved without telling: show it now
            self._pending_since = self._newer_since = float("-inf")
        stored = (await self._current(kind, now)).stored[kind]
        live = self._live_part(kind, now)
        if gzip:
            rest = stored.gzip_rest.copy()
            return Served(
                kind.content_type, stored.gzip_head + rest.compress(live) + rest.flush(), True
            )
        return Served(kind.content_type, stored.body + live, False)

    async def render(self) -> None:
        """Render every kind in use now, and wait for it (tests and the benchmark)."""
        await self._start()

    async def _current(self, kind: Kind, arrived: float) -> _Render:
        """The last render if it holds `kind` and every change older than STALE (or started
        after the scrape arrived: a scrape waits for one render at most), else the next one;
        starts one in the background when younger changes wait and none started lately."""
        while True:
            last = self._last
            if (
                last is not None
                and kind in last.stored
                and (not self._too_stale() or last.started >= arrived)
            ):
                if (
                    last.version != self._version
                    and not self._in_flight()
                    and self._clock() - self._render_started >= self._gap()
                ):
                    self._begin()  # refresh ahead, in the background
                return last
            self.scrape_renders += not self._in_flight()
            await self._start()

    def _gap(self) -> float:
        """How long after a render starts the next may start in the background: a render's
        time before STALE is up (a change that landed while it ran is then shown in time),
        or, on a board slow to render, what keeps renders within DUTY of the time."""
        return max(STALE - self._took, self._took * (1 - DUTY) / DUTY)

    @property
    def staleness_bound(self) -> float:
        """The age of the oldest change a scrape may miss now: STALE, or on a board slow to
        render (a big one, or a busy machine) the duty gap and a render (10,000 instruments:
        ~5 s)."""
        return max(STALE, self._gap() + self._took)

    def _too_stale(self) -> bool:
        since = self._pending_since
        return since is not None and self._clock() - since > self.staleness_bound

    def _in_flight(self) -> bool:
        return self._rendering is not None and not self._rendering.done()

    async def _start(self) -> _Render:
        rendering = self._rendering if self._in_flight() else None
        return await asyncio.shield(rendering or self._begin())

    def _begin(self) -> asyncio.Future[_Render]:
        """Start a render of every kind asked for in the last FORGET seconds."""
        now = self._render_started = self._clock()
        kinds = [kind for kind in KINDS if now - self._asked.get(kind, float("-inf")) <= FORGET]
        rendering = asyncio.ensure_future(self._render(kinds, now))
        self._rendering = rendering
        rendering.add_done_callback(self._rendered)
        return rendering

    async def _render(self, kinds: list[Kind], started: float) -> _Render:
        version = self._version
        self._newer_since = None
        probed = self._probe()
        # One step of the loop: what every stored collector shows now.
        shown = [_snapshot(collector) for collector in self._split()[0]]
        stored = await off_loop(_build, shown, kinds, version)
        self._pending_since = self._newer_since  # what this render misses
        self._probed = probed
        self.renders += 1
        self._took = self._clock() - started
        render = _Render(version, started, stored)
        if self._last is None or version >= self._last.version:
            self._last = render
        return render

    def _rendered(self, rendering: asyncio.Future[_Render]) -> None:
        if rendering is self._rendering:
            self._rendering = None
        if not rendering.cancelled() and rendering.exception() is not None:
            # The last whole render stays served; a scrape that waits for one answers 500.
            error = rendering.exception()
            log.error("exposition_render_failed", error=str(error), exc_info=error)

    async def _filter(self, kind: Kind, names: Sequence[str], now: float) -> bytes:
        """The families with a sample named in `names`, from what the collectors show now
        (filtered in the worker; kept until the next change)."""
        key = (kind, tuple(sorted(set(names))))
        state = (self._version, self._probe())  # what it would show, as far as is known
        kept = self._filtered.get(key)
        if kept is not None and kept[0] == state:
            return kept[1]
        if now < self._next_filtering:
            raise Busy(self._next_filtering - now)
        self._next_filtering = now + 1 / FILTERED_PER_SECOND
        stored, live = self._split()
        shown = [_snapshot(collector) for collector in stored]
        body = await off_loop(_restrict, kind, shown, live, key[1])
        if len(self._filtered) >= 100:  # names come from the wire: bound what is kept
            self._filtered.clear()
        self._filtered[key] = (state, body)
        return body

    def _live_part(self, kind: Kind, now: float) -> bytes:
        """The live part, rendered at most every `live_max_age` seconds (LIVE_MAX_AGE for the
        daemon's registry; 0, every scrape, for a plain one): reading /proc for the
        process_* samples was half the daemon's CPU under 1,000 concurrent scrapes (py-spy:
        ProcessCollector.collect 50 %, the live part 65 %), while the stored part cost a copy."""
        live = self._live.get(kind)
        if live is None or not 0 <= now - live[0] < self._live_max_age:
            live = self._live[kind] = (now, kind.encoder(Collectors(self._split()[1])))
        return live[1]

    def _probe(self) -> tuple[object, ...]:
        return tuple(probe() for probe in self._probes)

    def _split(self) -> tuple[list[Collector], list[Collector]]:
        if isinstance(self._registry, ExposedRegistry):
            return self._registry.split()
        return [], [self._registry]  # a plain registry: all of it live


def exposition_of(registry: CollectorRegistry) -> Exposition:
    """The exposition of `registry` (a plain registry gets one that renders it all per scrape)."""
    if isinstance(registry, ExposedRegistry):
        return registry.exposition
    return Exposition(registry)


def _snapshot(collector: Collector) -> Collector:
    """What `collector` shows now, to be collected whole in the worker: its `snapshot()` when
    it has one (the board: references to immutable outcomes, its thousands of samples built in
    the worker), else its families collected now (prometheus_client's counters and
    histograms: their size grows with the checks, not the instruments)."""
    snapshot = getattr(collector, "snapshot", None)
    return snapshot() if callable(snapshot) else Families(tuple(collector.collect()))


def _build(shown: list[Collector], kinds: list[Kind], version: int) -> dict[Kind, _Stored]:
    """In the worker: every kind's bytes of what the collectors showed (one hand-over)."""
    families = tuple(Collectors(shown).collect())
    return {kind: _store(kind, families, version) for kind in kinds}


def _store(kind: Kind, families: tuple[Metric, ...], version: int) -> _Stored:
    body = _trimmed(kind.encoder(Families(families)), kind)
    compressor = gzip_compressor()
    head = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return _Stored(version, body, head, compressor)


_TRAILERS: dict[Kind, bytes] = {}


class _WithoutCreated(Collector):
    """A collector's families without their `_created` samples (its snapshot too, so the
    board and the accumulators are still copied on the loop and built in the worker)."""

    def __init__(self, inner: Collector) -> None:
        self._inner = inner

    def describe(self) -> Iterable[Metric]:
        describe = getattr(self._inner, "describe", None)
        return describe() if describe is not None else self.collect()

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            if family.type in ("counter", "histogram", "summary", "gaugehistogram"):
                kept = [s for s in family.samples if not s.name.endswith("_created")]
                if len(kept) != len(family.samples):
                    family = copy.copy(family)
                    family.samples = kept
            yield family

    def snapshot(self) -> Collector:
        """What the inner collector shows now (see `_snapshot`), still without `_created`."""
        return _WithoutCreated(_snapshot(self._inner))


def _trailer(kind: Kind) -> bytes:
    """What ends every body of `kind`: b"# EOF\\n" or nothing."""
    trailer = _TRAILERS.get(kind)
    if trailer is None:
        trailer = _TRAILERS[kind] = kind.encoder(Families(()))
    return trailer


def _trimmed(body: bytes, kind: Kind) -> bytes:
    trailer = _trailer(kind)
    assert body.endswith(trailer)
    return body[: len(body) - len(trailer)]


def _restrict(
    kind: Kind, shown: list[Collector], live: list[Collector], names: tuple[str, ...]
) -> bytes:
    """In the worker: the families (stored, then live) with a sample named in `names`, as
    prometheus_client's restricted registry gives them."""
    registry = CollectorRegistry(auto_describe=True)
    for family in Collectors(shown).collect():
        registry.register(Families((family,)))
    for collector in live:
        registry.register(Families(tuple(collector.collect())))
    return kind.encoder(registry.restricted_registry(names))
