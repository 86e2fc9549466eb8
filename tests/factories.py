"""Small builders for tests: a check context over given sources, checks and outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quantops_exporter.checks.base import Check, CheckContext, Outcome, Run
from quantops_exporter.checks.catalog import Anchor
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.checks.verdict import Freshness, Reading, Reason, Status, Unreadable, Verdict
from quantops_exporter.market import AlwaysOpenCalendar, Calendar
from quantops_exporter.sources.stack_metrics import StackMetricsReader

INSTRUMENTS = ("EUR_USD", "USD_JPY")
NOW = 1_800_000_000.0


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_ctx(
    *,
    valkey: Any = None,
    http: Any = None,
    stack_metrics: Any = None,
    calendar: Calendar | None = None,
    clock: Any = None,
    instruments: tuple[str, ...] = INSTRUMENTS,
    api_url: str = "http://api.invalid",
    **thresholds: Any,
) -> CheckContext:
    """A context with the given sources; anything unused by the test may stay None. The stack's
    /metrics is read through `http` unless `stack_metrics` is given.
    `thresholds` are Thresholds fields by name (e.g. fresh_max_ws_age_sec=30)."""
    if stack_metrics is None and http is not None:
        stack_metrics = StackMetricsReader(http, "http://stack.invalid/metrics", share_for=0.0)
    return CheckContext(
        valkey=valkey,
        http=http,
        stack_metrics=stack_metrics,
        calendar=calendar or AlwaysOpenCalendar(),
        clock=clock or FrozenClock(),
        instruments=instruments,
        thresholds=Thresholds(**thresholds),
        api_url=api_url,
        allocator_url="http://allocator.invalid",
    )


def make_check(
    run: Run,
    *,
    name: str = "probe",
    interval: float = 10.0,
    timeout: float = 1.0,
    market_hours_only: bool = False,
    enabled: bool = True,
) -> Check:
    """A check row around `run`."""
    return Check(
        name=name,
        runbook="test",
        section="test",
        anchor=Anchor.PRE_OPEN,
        description="a test check",
        interval=interval,
        timeout=timeout,
        market_hours_only=market_hours_only,
        run=run,
        enabled=enabled,
    )


def outcome(
    check: str,
    status: Status = Status.OK,
    reason: Reason = Reason.NONE,
    summary: str = "s",
    *,
    started_at: float = NOW,
    duration: float = 0.01,
    expected: bool = True,
    freshness: tuple[Freshness, ...] = (),
    readings: tuple[Reading, ...] = (),
    observations: Mapping[str, object] | None = None,
    unreadable: tuple[Unreadable, ...] = (),
) -> Outcome:
    """An outcome of `check` as the runner would stamp it."""
    verdict = Verdict(
        status, reason, summary, freshness, readings, dict(observations or {}), unreadable
    )
    return Outcome(check, verdict, started_at, duration, expected)
