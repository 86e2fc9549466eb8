"""The stack's own Prometheus endpoint, parsed with prometheus_client's parser (not by hand)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.sources.errors import BadPayload, reading
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.http import HttpReader, endpoint_of
from quantops_exporter.trace import capturing
from quantops_exporter.worker import off_loop

# Checks whose cadences divide each other run at the same moments: a scrape this recent serves them.
SHARE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Series:
    """One sample: its labels and value."""

    labels: Mapping[str, str]
    value: float


class StackMetrics:
    """Samples by metric name from one scrape of the stack's /metrics."""

    def __init__(self, samples: Mapping[str, list[Series]]) -> None:
        self._samples = samples

    def series(self, name: str) -> list[Series]:
        """Every sample of `name` (empty when the stack does not expose it)."""
        return list(self._samples.get(name, ()))

    def has(self, name: str) -> bool:
        """Whether the stack exposes `name` at all."""
        return name in self._samples


def parse_exposition(text: str) -> StackMetrics:
    """Parse Prometheus text exposition; refuse what the parser refuses."""
    samples: dict[str, list[Series]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(
                    Series(dict(sample.labels), float(sample.value))
                )
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise BadPayload(f"stack /metrics is not Prometheus text: {str(err)[:120]}") from err
    return StackMetrics(samples)


@dataclass(slots=True)
class _Shared:
    """One request of the stack's /metrics and how many callers await it."""

    task: asyncio.Task[StackMetrics]
    waiters: int = 0


class StackMetricsReader:
    """One GET of the stack's /metrics serves every check that asks at about the same time.

    Five checks read it, and their cadences divide each other, so like a Home Assistant
    coordinator one request answers them all: concurrent callers await the same request and its
    result is reused for `share_for` seconds. A caller that gives up (its check timed out) leaves
    the request to the others; the last one to leave cancels it, so a hung stack is still seen as
    hung. A traced (debug) run makes its own request, so its trace shows it.
    """

    def __init__(
        self,
        http: HttpReader,
        url: str,
        *,
        share_for: float = SHARE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http, self._url = http, url
        self._share_for, self._monotonic = share_for, monotonic
        self._latest: tuple[float, StackMetrics] | None = None
        self._shared: _Shared | None = None

    async def read(self) -> StackMetrics:
        """The stack's metrics, from a request made at most `share_for` seconds ago."""
        if capturing():
            return await self._get()
        if self._latest is not None and self._monotonic() - self._latest[0] < self._share_for:
            return self._latest[1]
        shared = self._shared
        # A request its last waiter abandoned is being cancelled: joining it would end this
        # caller with a CancelledError of someone else's timeout (no outcome, a traceback).
        if shared is None or shared.task.cancelling() or shared.task.done():
            shared = self._shared = _Shared(asyncio.ensure_future(self._get_and_keep()))
        shared.waiters += 1
        try:
            return await asyncio.shield(shared.task)
        finally:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.task.done():
                shared.task.cancel()

    async def close(self) -> None:
        """Abandon a request still in flight."""
        if self._shared is not None:
            self._shared.task.cancel()
            await asyncio.wait({self._shared.task})

    async def _get_and_keep(self) -> StackMetrics:
        try:
            metrics = await self._get()
            self._latest = (self._monotonic(), metrics)
            return metrics
        finally:
            if self._shared is not None and self._shared.task is asyncio.current_task():
                self._shared = None

    async def _get(self) -> StackMetrics:
        text = await self._http.get_text(Dependency.STACK_METRICS, self._url)
        # In the worker thread: a line per series, 13.5 ms at 1,000 instruments on the loop. Its
        # errors come back through the await and are located here, on the loop.
        with reading(Dependency.STACK_METRICS, endpoint_of(self._url)):
            return await off_loop(parse_exposition, text)
