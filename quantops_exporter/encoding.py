"""The two bodies /metrics keeps, and how a scrape's Accept header picks one.

Kinds
    Prometheus text 0.0.4 and OpenMetrics 1.0.0. prometheus_client's negotiation decides text
    or OpenMetrics; any OpenMetrics version and any escaping then gets 1.0.0 with underscores
    (said so in the Content-Type). Every name the daemon exports is a legacy name
    ([a-zA-Z_][a-zA-Z0-9_]*), which every escaping scheme but `dots` writes as it is, and no
    family is a native histogram, the one thing 2.0.0 writes differently: the bodies a client
    could ask for by rotating versions and escapings would be the same bytes, or (dots) the
    same names with underscores doubled. Two kinds, so rotating the Accept header never evicts
    one body to render another (issue 21: with four of seven kept, every request rendered).

`fast_openmetrics` writes OpenMetrics 1.0.0 byte for byte as prometheus_client does, faster.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import exposition as text_exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

GZIP_LEVEL = 6  # zlib's default, as aiohttp's compression used

Encoder = Callable[[Collector], bytes]


@dataclass(frozen=True, slots=True)
class Kind:
    """A body /metrics keeps: its name, its encoder, the Content-Type it is served with."""

    name: str
    encoder: Encoder
    content_type: str


def _openmetrics(collector: Collector) -> bytes:
    return fast_openmetrics(collector, escaping=openmetrics.UNDERSCORES)


TEXT = Kind("text", text_exposition.generate_latest, text_exposition.CONTENT_TYPE_PLAIN_0_0_4)
OPENMETRICS = Kind(
    "openmetrics",
    _openmetrics,
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
)
KINDS = (TEXT, OPENMETRICS)


def negotiate(accept: str) -> Kind:
    """The kind for an Accept header: OpenMetrics when prometheus_client would answer some
    OpenMetrics for it, else text."""
    _encoder, content_type = text_exposition.choose_encoder(accept)
    return OPENMETRICS if content_type.startswith("application/openmetrics-text") else TEXT


_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # no escaping applies to such a name


def fast_openmetrics(collector: Collector, escaping: str = openmetrics.UNDERSCORES) -> bytes:
    """OpenMetrics 1.0.0, byte for byte what prometheus_client's generate_latest gives (with
    `escaping` underscores or allow-utf-8), several times faster.

    prometheus_client escapes every sample's name character by character: at 1,000
    instruments that was 60 % of a render (cProfile: 750,000 calls of _is_legacy_labelname_rune
    for 5 renders of 53,000 samples). For names made of [a-zA-Z0-9_] every escaping is the
    identity, so a family whose names all are, with no exemplars or native histograms, is
    written directly; any other family is written by prometheus_client itself. Tests compare
    the two on the daemon's whole registry and on hostile families.
    """
    output: list[str] = []
    append = output.append
    for metric in collector.collect():
        if not _plain(metric):
            family = openmetrics.generate_latest(  # type: ignore[no-untyped-call]
                Families((metric,)), escaping=escaping
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


def gzip_compressor() -> zlib._Compress:
    """A compressor writing one gzip member at GZIP_LEVEL."""
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)


def gzipped(body: bytes) -> bytes:
    """`body` as one gzip member."""
    compressor = gzip_compressor()
    return compressor.compress(body) + compressor.flush()


class Families(Collector):
    """Families already collected."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class Collectors(Collector):
    """Some collectors of a registry, in order, read anew on every collect()."""

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()
