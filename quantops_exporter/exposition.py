"""/metrics from stored bytes, rendered when what they show changes rather than on every scrape.

Stored and live
    `ExposedRegistry` keeps its collectors in registration order. Those registered before
    `store_registered()` are *stored*: they change only when the exposition is told so
    (`changed()`), so they are rendered once per change into bytes, per format (Prometheus text
    0.0.4; OpenMetrics when the scraper negotiates it), with a gzip copy, and served as they are.
    Those registered after are *live* (process_*: CPU, memory, descriptors; the HTTP server's
    counters): they change by themselves, so their few samples are rendered by scrapes (at most
    every LIVE_MAX_AGE seconds: a flood of scrapes shares one reading of /proc) and appended.
    Stored first, then live, is registration order: a body is byte for byte what
    prometheus_client's own generate_latest gives for the same registry.

Invalidation
    `changed()` moves a version on. The board calls it for every outcome and every new catalog
    (a reload, a check disabled); the metric objects call it for updates the board does not see
    (scheduler lag, missed runs, clock steps, reload results, new series). State without a change
    hook is *probed* instead (dependency health, the thresholds in force): each scrape compares it
    with what the last render read, and renders at once when it moved.

Timing: renders follow the scrapers
    A render is worth its cost only if a scrape serves it, so renders are timed by the
    scrapers the exposition has seen (`Cadence`: each scraper, told apart by its address and
    User-Agent, asks at its own interval). After a change, the next render comes `lead`
    (LEAD plus the longest render) before the next ask of a scraper that has not been prepared for
    yet: with Prometheus every 15 s, one render per scrape, just before it, however many
    outcomes land in between; with nobody scraping, none at all. A scraper that asks faster
    than that (a flood, a test polling) gets renders as fast as the duty bound allows:
    gap = max(MIN_GAP, render time x (1 - DUTY) / DUTY), at most MAX_GAP, so rendering takes at
    most DUTY of the loop however many outcomes arrive. Only the formats asked for in the last
    FORGET seconds are rendered, at most MAX_FORMATS of them.

What a scrape sees
    A scrape serves the last whole render, and every change older than STALE is in it: a scrape
    that would serve older news (an ask nobody predicted: a curl, a scraper whose interval
    changed, the first scrape after a pause) renders itself first. On a board whose render
    takes longer than DUTY of STALE (~40 ms at 1,000 instruments, ~400 ms at 10,000) the
    bound is the duty gap instead (2 s, 5 s), so that scrapes in a flood do not render every
    second. A scrape renders too when a probe moved, when its format has no bytes yet, or
    when no loop runs to render in the background (the benchmark, synchronous tests).

Whole boards only
    A render reads every stored collector in one synchronous step of the event loop (no await, so
    no outcome, reload or health flip can land in between), builds every byte string of every
    format, then swaps one reference per format. A scrape reads that reference once.
"""

from __future__ import annotations

import asyncio
import copy
import math
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

log = structlog.get_logger("quantops_exporter.exposition")

MIN_GAP = 0.5  # seconds between two background renders, at least
MAX_GAP = 5.0  # ... and at most, when the duty bound would space them wider
DUTY = 0.02  # the share of the event loop background renders may take
STALE = 1.0  # seconds: a scrape serves every change older than this (else it renders itself)
LEAD = 0.25  # seconds a render comes before the ask it prepares for, plus one render time
MAX_SCRAPERS = 16  # scrapers whose cadence is kept (addresses come from the wire: bound them)
FORGET = 600.0  # a format nobody asked for in this long is no longer rendered
MAX_FORMATS = 4  # formats kept (the Accept header picks the version string: bound it)
LIVE_MAX_AGE = 0.1  # seconds a rendering of the live part (process_*, HTTP server) is reused
GZIP_LEVEL = 6  # zlib's default, as aiohttp's compression used

Encoder = Callable[[Collector], bytes]
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


@dataclass(slots=True)
class _Scraper:
    last: float  # when it last asked
    interval: float | None = None  # between its last two asks


class Cadence:
    """The scrapers seen, and when each will ask next: a render is worth doing just before one
    does (the module docstring). Scrapers are told apart by a key (address and User-Agent);
    the MAX_SCRAPERS most recent are kept."""

    def __init__(self) -> None:
        self._scrapers: dict[str, _Scraper] = {}  # least recently asking first

    def asked(self, who: str, now: float) -> None:
        """`who` asked at `now`."""
        scraper = self._scrapers.pop(who, None)
        if scraper is None:
            scraper = _Scraper(now)
            if len(self._scrapers) >= MAX_SCRAPERS:
                del self._scrapers[next(iter(self._scrapers))]
        elif now > scraper.last:
            scraper.interval, scraper.last = now - scraper.last, now
        self._scrapers[who] = scraper

    def next_render(self, now: float, rendered_at: float, lead: float) -> float | None:
        """When to render next: `lead` before the earliest predicted ask that no render since
        `rendered_at` prepared for; None when no scraper with a known interval is still
        asking (one is gone after missing two asks)."""
        earliest: float | None = None
        for who, scraper in list(self._scrapers.items()):
            interval = scraper.interval
            if interval is None:
                if now - scraper.last > FORGET:
                    del self._scrapers[who]
                continue
            if now - scraper.last > 2 * interval + STALE:
                del self._scrapers[who]  # gone (it comes back as new when it asks again)
                continue
            # The first ask after the last one whose render has not started yet.
            behind = rendered_at + lead - scraper.last
            asks = 1 if behind < interval else math.floor(behind / interval) + 1
            due = scraper.last + asks * interval - lead
            earliest = due if earliest is None else min(earliest, due)
        return earliest


@dataclass(frozen=True, slots=True)
class Served:
    """One /metrics answer: its content type, its body, whether the body is gzipped."""

    content_type: str
    body: bytes
    gzipped: bool


@dataclass(frozen=True, slots=True)
class _Stored:
    """The stored families in one format, rendered whole at one version."""

    version: int
    body: bytes  # OpenMetrics: without its "# EOF" (the live part ends the body)
    gzip_head: bytes  # `body` gzipped, flushed to a byte boundary but not finished
    gzip_rest: zlib._Compress  # the compressor after `body`: a copy per scrape adds the live part


class _Format:
    """A format a scraper asked for: its encoder, when it was last asked for, its stored bytes."""

    __slots__ = ("asked_at", "encoder", "live", "stored", "trailer")

    def __init__(self, encoder: Encoder, asked_at: float) -> None:
        self.encoder = encoder
        self.asked_at = asked_at
        self.stored: _Stored | None = None
        self.live: tuple[float, bytes] | None = None  # (rendered at, the live part)
        self.trailer = encoder(_Families(()))  # what ends every body: b"# EOF\n" or nothing


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
        self._pending_since: float | None = None  # the first change no render has shown yet
        self._probes: tuple[Probe, ...] = ()
        self._probed: tuple[object, ...] | None = None  # what the probes read at the last render
        self._formats: dict[str, _Format] = {}  # by content type, least recently asked first
        self._cadence = Cadence()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._timer_at = float("inf")
        self._next_render = float("-inf")  # the duty bound
        self._rendered_at = float("-inf")  # when the last render started
        # How long before an ask its render comes: LEAD plus the longest render seen, at most
        # STALE. Never shorter, or a render made for an ask would, measured with a shorter
        # lead, look as if it came too early and the ask would get a second one.
        self._lead = LEAD
        self._gap = MIN_GAP  # the duty bound's gap after it
        self.renders = 0  # how many renders ran (tests and the benchmark count them)
        self.scrape_renders = 0  # ... of which a scrape had to wait for

    def probe(self, *probes: Probe) -> None:
        """Also watch state that has no change hook: each scrape compares what `probes` return
        with what they returned at the last render."""
        self._probes += probes

    def changed(self) -> None:
        """Something stored changed: render it before the next scrape that is expected, with
        every other change until then."""
        self._version += 1
        if self._pending_since is None:
            self._pending_since = self._clock()
        if self._formats and not self._due():  # else nobody scrapes yet, or a render is due
            self._schedule()

    def serve(
        self,
        accept: str = "",
        *,
        gzip: bool = False,
        names: Sequence[str] = (),
        scraper: str = "",
    ) -> Served:
        """The body for `scraper` (a key telling scrapers apart: address and User-Agent) that
        sent `accept` (the Accept header) and accepts gzip or not; `names` (?name[]=...)
        restricts the families, rendered then, as prometheus_client does."""
        encoder, content_type = choose_encoder(accept)
        if names:
            body = encoder(self._registry.restricted_registry(names))
            return Served(content_type, _gzip(body) if gzip else body, gzip)
        now = self._clock()
        fmt = self._format(content_type, encoder, now)
        self._cadence.asked(scraper, now)
        if self._probe() != self._probed:
            self._version += 1  # it moved without telling: show it now
            self._render(now, scrape=True)
        elif fmt.stored is None or (fmt.stored.version != self._version and self._too_stale(now)):
            self._render(now, scrape=True)
        elif self._pending_since is not None:
            self._schedule()  # this ask may move the next render
        stored = fmt.stored
        assert stored is not None  # rendered above
        live = self._live(fmt, encoder, now)
        if gzip:
            rest = stored.gzip_rest.copy()
            return Served(content_type, stored.gzip_head + rest.compress(live) + rest.flush(), True)
        return Served(content_type, stored.body + live, False)

    def render(self) -> None:
        """Render every format in use that is behind, now."""
        self._render(self._clock())

    async def settled(self) -> None:
        """Return once no background render is due (for tests)."""
        loop = asyncio.get_running_loop()
        while self._due():
            assert self._timer is not None
            await asyncio.sleep(max(0.0, self._timer.when() - loop.time()))
            await asyncio.sleep(0)

    def _too_stale(self, now: float) -> bool:
        """Whether a scrape at `now` must render: a change waits longer than STALE (or than
        the duty bound's gap, when renders take longer than DUTY of a second: a big board),
        or no loop runs to render in the background."""
        bound = max(STALE, self._gap)
        if self._pending_since is not None and now - self._pending_since > bound:
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    def _live(self, fmt: _Format, encoder: Encoder, now: float) -> bytes:
        """The live part, rendered at most every `live_max_age` seconds (LIVE_MAX_AGE for the
        daemon's registry; 0, every scrape, for a plain one): reading /proc for the
        process_* samples was half the daemon's CPU under 1,000 concurrent scrapes (py-spy:
        ProcessCollector.collect 50 %, the live part 65 %), while the stored part cost a copy."""
        if fmt.live is None or not 0 <= now - fmt.live[0] < self._live_max_age:
            fmt.live = (now, encoder(_Collectors(self._split()[1])))
        return fmt.live[1]

    def _format(self, content_type: str, encoder: Encoder, now: float) -> _Format:
        fmt = self._formats.pop(content_type, None)
        if fmt is None:
            fmt = _Format(encoder, now)
            if len(self._formats) >= MAX_FORMATS:
                del self._formats[next(iter(self._formats))]  # the least recently asked for
        fmt.asked_at = now
        self._formats[content_type] = fmt  # last: the most recently asked for
        return fmt

    def _probe(self) -> tuple[object, ...]:
        return tuple(probe() for probe in self._probes)

    def _split(self) -> tuple[list[Collector], list[Collector]]:
        if isinstance(self._registry, ExposedRegistry):
            return self._registry.split()
        return [], [self._registry]  # a plain registry: all of it live

    def _plan(self, now: float) -> float | None:
        """When the next background render is due: before the next expected ask, within the
        duty bound; None when nothing waits or no scraper is expected."""
        if self._pending_since is None:
            return None
        due = self._cadence.next_render(now, self._rendered_at, self._lead)
        return None if due is None else max(due, self._next_render)

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to render on: the next scrape renders
        now = self._clock()
        at = self._plan(now)
        if at is None:
            self._cancel()
            return
        if self._timer is not None and self._timer_loop is loop and self._timer_at <= at:
            return  # one is due sooner already: it plans again when it fires
        self._cancel()
        self._timer = loop.call_later(max(0.0, at - now), self._render_due)
        self._timer_loop, self._timer_at = loop, at

    def _due(self) -> bool:
        """Whether a background render is due on the running loop."""
        if self._timer is None:
            return False
        try:
            return asyncio.get_running_loop() is self._timer_loop
        except RuntimeError:
            return False

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_loop = None
        self._timer_at = float("inf")

    def _render_due(self) -> None:
        self._cancel()  # it fired: forget it
        now = self._clock()
        at = self._plan(now)
        if at is None or at > now:
            self._schedule()  # the asks moved since this was planned
            return
        try:
            self._render(now)
        except Exception as err:
            # The last whole render stays served; the next scrape renders and answers 500.
            log.error("exposition_render_failed", error=str(err), exc_info=err)

    def _render(self, now: float, *, scrape: bool = False) -> None:
        """Render every format in use that is behind, whole, then swap each one's bytes in."""
        self._cancel()
        started = time.perf_counter()
        for content_type in [c for c, f in self._formats.items() if now - f.asked_at > FORGET]:
            del self._formats[content_type]
        version = self._version
        behind = [
            f for f in self._formats.values() if f.stored is None or f.stored.version != version
        ]
        if behind:
            probed = self._probe()
            families = _Families(tuple(_Collectors(self._split()[0]).collect()))
            rendered = [_store(fmt, families, version) for fmt in behind]
            for fmt, stored in zip(behind, rendered, strict=True):
                fmt.stored = stored
            self._probed = probed
            self.renders += 1
            self.scrape_renders += scrape
        self._pending_since = None
        self._rendered_at = now
        elapsed = time.perf_counter() - started
        self._lead = min(STALE, max(self._lead, LEAD + elapsed))
        self._gap = min(MAX_GAP, max(MIN_GAP, elapsed * (1 - DUTY) / DUTY))
        self._next_render = self._clock() + self._gap


def choose_encoder(accept: str) -> tuple[Encoder, str]:
    """prometheus_client's choice of format for an Accept header, with its OpenMetrics 1.0.0
    encoder (what Prometheus negotiates) replaced by `fast_openmetrics` where that gives the
    same bytes."""
    encoder, content_type = text_exposition.choose_encoder(accept)
    if (
        isinstance(encoder, partial)
        and encoder.func is openmetrics.generate_latest
        and not encoder.args
        and encoder.keywords.get("version") == "1.0.0"
        and encoder.keywords.get("escaping") in (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8)
    ):
        return partial(fast_openmetrics, escaping=encoder.keywords["escaping"]), content_type
    return encoder, content_type


_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # no escaping applies to such a name


def fast_openmetrics(collector: Collector, escaping: str = openmetrics.UNDERSCORES) -> bytes:
    """OpenMetrics 1.0.0, byte for byte what prometheus_client's generate_latest gives (with
    `escaping` underscores or allow-utf-8), several times faster.

    prometheus_client escapes every sample's name character by character: at 1,000
    instruments that was 60 % of a render (cProfile: 750,000 calls of _is_legacy_labelname_rune
    for 5 renders of 53,000 samples), and renders were most of the daemon's loop time and idle
    CPU (benchmarks/instruments.py). For names made of [a-zA-Z0-9_] every escaping is the
    identity, so a family whose names all are, with no exemplars or native histograms, is
    written directly; any other family is written by prometheus_client itself. Tests compare
    the two on the daemon's whole registry and on hostile families.
    """
    output: list[str] = []
    append = output.append
    for metric in collector.collect():
        if not _plain(metric):
            family = openmetrics.generate_latest(  # type: ignore[no-untyped-call]
                _Families((metric,)), escaping=escaping
            )
            append(family.decode("utf-8").removesuffix("# EOF\n"))
            continue
        name = metric.name
        append(f"# HELP {name} {_escape_value(metric.documentation)}\n")
        append(f"# TYPE {name} {metric.type}\n")
        if metric.unit:
            append(f"# UNIT {name} {metric.unit}\n")
        for sample in metric.samples:
            labels = ""
            if sample.labels:
                pairs = ",".join(
                    f'{k}="{_escape_value(v)}"' for k, v in sorted(sample.labels.items())
                )
                labels = "{" + pairs + "}"
            value = "" if sample.value is None else floatToGoString(sample.value)  # type: ignore[no-untyped-call]
            stamp = "" if sample.timestamp is None else f" {sample.timestamp}"
            append(f"{sample.name}{labels} {value}{stamp}\n")
    append("# EOF\n")
    return "".join(output).encode("utf-8")


_plain_names: dict[str, bool] = {}


def _legacy(name: str) -> bool:
    known = _plain_names.get(name)
    if known is None:
        if len(_plain_names) > 100_000:  # names come from code, but bound the memo anyway
            _plain_names.clear()
        # A reserved "__" label name is quoted under allow-utf-8: not plain either.
        plain = _LEGACY_NAME.fullmatch(name) is not None and not name.startswith("__")
        known = _plain_names[name] = plain
    return known


def _plain(metric: Metric) -> bool:
    if not _legacy(metric.name):
        return False
    for sample in metric.samples:
        if sample.exemplar is not None or sample.native_histogram is not None:
            return False
        if not _legacy(sample.name) or not all(_legacy(k) for k in sample.labels):
            return False
    return True


def _escape_value(text: str) -> str:
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


def exposition_of(registry: CollectorRegistry) -> Exposition:
    """The exposition of `registry` (a plain registry gets one that renders it all per scrape)."""
    if isinstance(registry, ExposedRegistry):
        return registry.exposition
    return Exposition(registry)


def _store(fmt: _Format, families: _Families, version: int) -> _Stored:
    rendered = fmt.encoder(families)
    assert rendered.endswith(fmt.trailer)
    body = rendered[: len(rendered) - len(fmt.trailer)]
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return _Stored(version, body, head, compressor)


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


class _WithoutCreated(Collector):
    """A collector's families without their `_created` samples."""

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


class _Families(Collector):
    """Families already collected."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _Collectors(Collector):
    """Some collectors of a registry, in order, read anew on every collect()."""

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()
