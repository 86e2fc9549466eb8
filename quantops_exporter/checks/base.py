"""A check: the row in the catalog, the context it reads through, and the outcome it records."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.checks.verdict import (
    Freshness,
    Measure,
    Reading,
    Reason,
    Status,
    Unreadable,
    Verdict,
)
from quantops_exporter.sources.errors import reading
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.http import endpoint_of

if TYPE_CHECKING:
    from quantops_exporter.market import Calendar
    from quantops_exporter.sources.http import HttpReader
    from quantops_exporter.sources.stack_metrics import StackMetricsReader
    from quantops_exporter.sources.valkey import ValkeyReader


@dataclass(frozen=True, slots=True)
class Outcome:
    """A verdict stamped with the check that produced it, when it started, how long it took and
    whether the check was expected to be healthy at that moment."""

    check: str
    verdict: Verdict
    started_at: float
    duration: float
    expected: bool

    @property
    def status(self) -> Status:
        """The verdict's status."""
        return self.verdict.status

    @property
    def reason(self) -> Reason:
        """The verdict's reason."""
        return self.verdict.reason

    @property
    def summary(self) -> str:
        """The verdict's one-line summary."""
        return self.verdict.summary

    @property
    def freshness(self) -> tuple[Freshness, ...]:
        """The verdict's freshness stamps."""
        return self.verdict.freshness

    @property
    def readings(self) -> tuple[Reading, ...]:
        """The verdict's domain numbers."""
        return self.verdict.readings

    @property
    def unreadable(self) -> tuple[Unreadable, ...]:
        """What the run could not read, and why."""
        return self.verdict.unreadable

    @property
    def observations(self) -> Mapping[str, object]:
        """What the check saw, for the JSON API."""
        return self.verdict.observations

    @property
    def healthy(self) -> bool:
        """ok and skipped count as healthy; fail and error do not."""
        return self.verdict.status in (Status.OK, Status.SKIPPED)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may touch: read-only sources, the calendar, the clock and the knobs."""

    valkey: ValkeyReader
    http: HttpReader
    stack_metrics: StackMetricsReader
    calendar: Calendar
    clock: Callable[[], float]
    instruments: tuple[str, ...]
    thresholds: Thresholds
    api_url: str
    allocator_url: str
    memory: CheckMemory = field(default_factory=CheckMemory)


Run = Callable[[CheckContext], Awaitable[Verdict]]


def with_unconfigured(
    verdict: Verdict, check: str, seen: Iterable[str], instruments: Iterable[str]
) -> Verdict:
    """Add how many instruments the data named that HOTBAND_PAIRS does not (cardinality guard:
    names read off the wire never become label values; they are only counted, per check)."""
    unknown = set(seen) - set(instruments)
    reading = Reading(Measure.UNCONFIGURED_INSTRUMENTS, float(len(unknown)), (check,))
    return dataclasses.replace(verdict, readings=(*verdict.readings, reading))


def from_http(dependency: Dependency, url: str) -> AbstractContextManager[None]:
    """Say which endpoint a parse error of `url`'s answer could not read."""
    return reading(dependency, endpoint_of(url))


def from_valkey(key: str) -> AbstractContextManager[None]:
    """Say which key a parse error of its value could not read."""
    return reading(Dependency.VALKEY, key)


def judged_at(verdict: Verdict, dependency: Dependency, url: str) -> Verdict:
    """An evaluator's own `error` (a timestamp in the future, ...) as what `url` answered: what
    the run could not read."""
    if verdict.status is not Status.ERROR or verdict.unreadable:
        return verdict
    where = Unreadable(dependency, endpoint_of(url), verdict.reason)
    return dataclasses.replace(verdict, unreadable=(where,))


A = TypeVar("A")
B = TypeVar("B")


async def read_both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await two reads concurrently and let both finish, then raise the first error.

    Not a TaskGroup: a group cancels the sibling of a failed read, and DependencyHealth takes a
    cancelled request for a hung dependency, so an API outage would mark Valkey down too.
    """
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Check:
    """One runbook check: its label name, runbook step and anchor, cadence, timeout, what it runs
    and the dependencies it reads."""

    name: str
    runbook: str
    section: str
    anchor: str  # the runbook heading this check's remedy is under (a GitHub heading slug)
    description: str
    interval: float
    run: Run
    timeout: float = 5.0
    market_hours_only: bool = False
    dependencies: tuple[Dependency, ...] = ()
    enabled: bool = True
