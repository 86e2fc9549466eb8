"""The runner: every way a check can end becomes a status and a closed-enum reason."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.verdict import Reason, Status, Verdict
from quantops_exporter.market import Closure, FxCalendar
from quantops_exporter.runner import run_check
from quantops_exporter.sources import errors
from tests.factories import FrozenClock, make_check, make_ctx

SATURDAY = 1_800_100_800.0  # 2027-01-16 12:00 UTC, a Saturday: the FX market is closed


async def test_ok_verdict_is_stamped() -> None:
    """A verdict becomes an outcome with the check's name, start time and duration."""

    async def run(ctx: CheckContext) -> Verdict:
        return Verdict(Status.OK, Reason.NONE, "fine")

    outcome = await run_check(make_check(run, name="x"), make_ctx())
    assert (outcome.check, outcome.status, outcome.reason) == ("x", Status.OK, Reason.NONE)
    assert outcome.started_at == FrozenClock().now
    assert outcome.duration >= 0
    assert outcome.expected


async def test_hung_check_times_out() -> None:
    """A run that outlives its timeout is cancelled and reported error/timeout."""
    never = asyncio.Event()

    async def run(ctx: CheckContext) -> Verdict:
        await never.wait()
        raise AssertionError("unreachable")

    outcome = await run_check(make_check(run, timeout=0.05), make_ctx())
    assert (outcome.status, outcome.reason) == (Status.ERROR, Reason.TIMEOUT)
    assert "0.05s timeout" in outcome.summary


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (errors.Unreachable("refused"), Reason.UNREACHABLE),
        (errors.HttpStatusError("http://x/api", 500), Reason.HTTP_ERROR),
        (errors.BadPayload("not JSON"), Reason.BAD_PAYLOAD),
        (errors.TooLarge("huge"), Reason.TOO_LARGE),
        (errors.WrongType("WRONGTYPE"), Reason.WRONG_TYPE),
        (errors.Forbidden("NOPERM"), Reason.FORBIDDEN),
    ],
)
async def test_source_errors_map_to_reasons(error: Exception, reason: Reason) -> None:
    """Each source error class has its own reason; the message goes to the summary only."""

    async def run(ctx: CheckContext) -> Verdict:
        raise error

    outcome = await run_check(make_check(run), make_ctx())
    assert (outcome.status, outcome.reason) == (Status.ERROR, reason)
    assert outcome.summary == str(error)


async def test_task_group_errors_are_unwrapped() -> None:
    """An error from inside a TaskGroup is reported by its own class, not as a group."""

    async def fail() -> None:
        raise errors.Unreachable("api down")

    async def run(ctx: CheckContext) -> Verdict:
        async with asyncio.TaskGroup() as group:
            group.create_task(fail())
        raise AssertionError("unreachable")

    outcome = await run_check(make_check(run), make_ctx())
    assert outcome.reason is Reason.UNREACHABLE


async def test_a_bug_is_internal_error_and_logged_with_traceback() -> None:
    """An unexpected exception is error/internal_error, logged once with its traceback."""

    async def run(ctx: CheckContext) -> Verdict:
        return {}["missing"]  # type: ignore[no-any-return]

    with capture_logs() as logs:
        outcome = await run_check(make_check(run, name="buggy"), make_ctx())
    assert (outcome.status, outcome.reason) == (Status.ERROR, Reason.INTERNAL_ERROR)
    assert "KeyError" in outcome.summary
    crashes = [e for e in logs if e["event"] == "check_crashed"]
    assert len(crashes) == 1
    assert crashes[0]["check"] == "buggy"
    assert isinstance(crashes[0]["exc_info"], KeyError)


async def test_market_hours_check_is_skipped_without_io_while_closed() -> None:
    """While the market is closed a market-hours check is skipped and its run never called."""
    calls = 0

    async def run(ctx: CheckContext) -> Verdict:
        nonlocal calls
        calls += 1
        return Verdict(Status.OK, Reason.NONE, "")

    ctx = make_ctx(calendar=FxCalendar(), clock=FrozenClock(SATURDAY))
    outcome = await run_check(make_check(run, market_hours_only=True), ctx)
    assert (outcome.status, outcome.reason, outcome.expected) == (
        Status.SKIPPED,
        Reason.MARKET_CLOSED,
        False,
    )
    assert calls == 0
    always = await run_check(make_check(run, market_hours_only=False), ctx)
    assert always.expected and calls == 1


async def test_cancellation_is_not_swallowed() -> None:
    """Shutdown cancelling a run propagates; the runner does not turn it into an outcome."""
    started = asyncio.Event()

    async def run(ctx: CheckContext) -> Verdict:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(run_check(make_check(run, timeout=10), make_ctx()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


SUNDAY_OPEN = 1_798_408_800.0  # 2026-12-27 17:00 New York (22:00 UTC): the weekly open


@pytest.mark.parametrize(
    ("after_open", "market_hours_only", "status", "expected"),
    [
        (120, True, Status.FAIL, False),  # reading Friday's data: shown, not expected
        (120, True, Status.OK, False),  # the whole window is not expected, ok or not
        (120, False, Status.FAIL, True),  # checks that run all week have no warm-up
        (299, True, Status.ERROR, False),
        (300, True, Status.FAIL, True),  # QUANTOPS_PREOPEN_READY_WITHIN_SECONDS: judged again
        (3 * 86_400, True, Status.FAIL, True),  # mid-week
    ],
)
async def test_market_hours_checks_warm_up_after_the_open(
    after_open: float, market_hours_only: bool, status: Status, expected: bool
) -> None:
    """After the weekly open the market-hours checks run and show what they see, but are not
    expected (cannot page) for QUANTOPS_PREOPEN_READY_WITHIN_SECONDS: the writers resume."""
    assert not FxCalendar().is_open(SUNDAY_OPEN - 1) and FxCalendar().is_open(SUNDAY_OPEN)

    async def run(ctx: CheckContext) -> Verdict:
        return Verdict(status, Reason.NONE if status is Status.OK else Reason.STALE, "old data")

    ctx = make_ctx(
        calendar=FxCalendar(),
        clock=FrozenClock(SUNDAY_OPEN + after_open),
        preopen_ready_within_seconds=300,
    )
    outcome = await run_check(make_check(run, market_hours_only=market_hours_only), ctx)
    assert outcome.status is status and outcome.expected is expected
    warming = outcome.summary.startswith("warming up after the open (not expected for ")
    assert warming is (not expected and status is not Status.OK)


async def test_a_holiday_reopen_warms_up_too() -> None:
    """A closed trading day (QUANTOPS_MARKET_CLOSURES) ends with an open like Sunday's."""
    reopen = 1_798_149_600.0  # 2026-12-24 17:00 New York, the end of closed Dec 24 (a Thursday)
    calendar = FxCalendar([Closure.parse("12-24")])
    assert calendar.is_open(reopen) and not calendar.is_open(reopen - 1)

    async def run(ctx: CheckContext) -> Verdict:
        return Verdict(Status.FAIL, Reason.STALE, "old data")

    ctx = make_ctx(calendar=calendar, clock=FrozenClock(reopen + 60))
    outcome = await run_check(make_check(run, market_hours_only=True), ctx)
    assert not outcome.expected and outcome.summary.startswith("warming up")
