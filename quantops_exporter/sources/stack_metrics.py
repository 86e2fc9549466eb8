"""The stack's own Prometheus endpoint, parsed with prometheus_client's parser (not by hand)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.http import HttpReader


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


async def read_stack_metrics(http: HttpReader, url: str) -> StackMetrics:
    """GET the stack's /metrics and parse it."""
    return parse_exposition(await http.get_text(Dependency.STACK_METRICS, url))
