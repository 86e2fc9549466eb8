"""Counters and histograms by label values whose state a render copies in microseconds.

A render takes what every stored collector shows in one step of the event loop (exposition.py).
prometheus_client's Counter and Histogram can only be collected, into Sample objects: for the
daemon's per-check series (runs, durations, scheduler lag: ~900 samples) that step took 2.5 ms
at every render. These keep plain numbers per series; `snapshot()` copies them, a tuple per
series, and the families are built from the copy in the worker thread. The samples, their
names, labels, values and order are prometheus_client's (`_total`, `_bucket`, `_count`, `_sum`,
`_created`); tests compare the two.

They are fed from the event loop only (board listeners, scheduler events): no lock.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Changed = Callable[[], None]
Key = tuple[str, ...]


class _Series:
    __slots__ = ("counts", "created", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0.0] * buckets  # per bucket (not cumulative); a counter has one
        self.total = 0.0  # a histogram's sum, a counter's value
        self.created = time.time()


class _Accumulator(Collector):
    """Series by label values; `kind` "counter" or "histogram"."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        kind: str,
        bounds: tuple[float, ...] = (),
    ) -> None:
        self._name, self._documentation = name, documentation
        self._labelnames, self._kind = tuple(labelnames), kind
        self._bounds = (*bounds, float("inf")) if kind == "histogram" else ()
        self._series: dict[Key, _Series] = {}
        registry.register(self)

    def _get(self, values: Sequence[str]) -> _Series:
        key = tuple(str(value) for value in values)
        series = self._series.get(key)
        if series is None:
            if len(key) != len(self._labelnames):
                raise ValueError(f"{self._name}: labels {self._labelnames}, got {key}")
            series = self._series[key] = _Series(max(1, len(self._bounds)))
        return series

    def describe(self) -> Iterator[Metric]:
        """The family, without samples."""
        yield Metric(self._name, self._documentation, self._kind)

    def collect(self) -> Iterator[Metric]:
        """The family as it is now."""
        yield from self.snapshot().collect()

    def snapshot(self) -> Collector:
        """What the series hold now, copied: collected later, in another thread if need be."""
        copied = tuple(
            (key, tuple(series.counts), series.total, series.created)
            for key, series in self._series.items()
        )
        return _Copy(self._family, copied)

    def _family(self, copied: tuple[tuple[Key, tuple[float, ...], float, float], ...]) -> Metric:
        family = Metric(self._name, self._documentation, self._kind)
        name = self._name
        for key, counts, total, created in copied:
            labels = dict(zip(self._labelnames, key, strict=True))
            if self._kind == "counter":
                family.add_sample(f"{name}_total", labels, total)
            else:
                cumulative = 0.0
                for bound, count in zip(self._bounds, counts, strict=True):
                    cumulative += count
                    le = floatToGoString(bound)  # type: ignore[no-untyped-call]
                    family.add_sample(f"{name}_bucket", {**labels, "le": le}, cumulative)
                family.add_sample(f"{name}_count", labels, cumulative)
                family.add_sample(f"{name}_sum", labels, total)
            family.add_sample(f"{name}_created", labels, created)
        return family


@dataclass(frozen=True, slots=True)
class _Copy(Collector):
    build: Callable[[tuple[tuple[Key, tuple[float, ...], float, float], ...]], Metric]
    copied: tuple[tuple[Key, tuple[float, ...], float, float], ...]

    def collect(self) -> Iterator[Metric]:
        yield self.build(self.copied)


class CounterChild:
    """One series of a `CounterVec`."""

    __slots__ = ("_changed", "_series")

    def __init__(self, series: _Series, changed: Changed) -> None:
        self._series, self._changed = series, changed

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount` (not negative)."""
        if amount < 0:
            raise ValueError("counters only go up")
        self._series.total += amount
        self._changed()


class HistogramChild:
    """One series of a `HistogramVec`."""

    __slots__ = ("_bounds", "_changed", "_series")

    def __init__(self, series: _Series, bounds: tuple[float, ...], changed: Changed) -> None:
        self._series, self._bounds, self._changed = series, bounds, changed

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.observe_many((value,))

    def observe_many(self, values: Sequence[float]) -> None:
        """Count several observations at once (a run's 1,000 freshness ages)."""
        counts, bounds = self._series.counts, self._bounds
        for value in values:
            if value == value:  # NaN falls in no bucket (as in prometheus_client)
                counts[bisect.bisect_left(bounds, value)] += 1
            self._series.total += value
        self._changed()


def _unwatched() -> None:
    """Nobody to tell."""


class CounterVec(_Accumulator):
    """A counter by label values (prometheus_client's `Counter(name, doc, labelnames)`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        on_change: Changed = _unwatched,
    ) -> None:
        super().__init__(name, documentation, labelnames, registry, "counter")
        self._changed = on_change

    def labels(self, *values: str) -> CounterChild:
        """The series for these label values (created at 0 the first time)."""
        return CounterChild(self._get(values), self._changed)


class HistogramVec(_Accumulator):
    """A histogram by label values (prometheus_client's `Histogram(..., buckets=...)`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: tuple[float, ...],
        on_change: Changed = _unwatched,
    ) -> None:
        super().__init__(name, documentation, labelnames, registry, "histogram", buckets)
        self._changed = on_change

    def labels(self, *values: str) -> HistogramChild:
        """The series for these label values (created empty the first time)."""
        return HistogramChild(self._get(values), self._bounds, self._changed)
