"""Small builders for tests: a check context over given sources, and one-off checks."""

from __future__ import annotations

from typing import Any

from quantops_exporter.checks.base import Check, CheckContext, Run, Thresholds
from quantops_exporter.market import AlwaysOpenCalendar, Calendar

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
    calendar: Calendar | None = None,
    clock: Any = None,
    instruments: tuple[str, ...] = INSTRUMENTS,
    api_url: str = "http://api.invalid",
    **thresholds: Any,
) -> CheckContext:
    """A context with the given sources; anything unused by the test may stay None."""
    return CheckContext(
        valkey=valkey,
        http=http,
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
) -> Check:
    """A check row around `run`."""
    return Check(
        name=name,
        runbook="test",
        section="test",
        description="a test check",
        interval=interval,
        timeout=timeout,
        market_hours_only=market_hours_only,
        run=run,
    )
