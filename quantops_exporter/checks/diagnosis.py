"""Troubleshooting: No Positions While Gates Are Green — the whole procedure as a decision tree.

When gates are green and nothing has been open for longer than the grace (5 minutes) while the
market is open, the runbook's steps 1-7 are evaluated in order, by the very checks that verify
them, and the first failing one is reported with the runbook's advice. Step 8 (POST
/api/trade/reconcile) is advice only: the daemon never calls it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from quantops_exporter.checks.allocation import check_allocation_weights
from quantops_exporter.checks.base import CheckContext, from_http, read_both
from quantops_exporter.checks.freshness import (
    check_gates_blob_freshness,
    check_manifold_freshness,
    check_signal_freshness,
)
from quantops_exporter.checks.gates import ROLLING_GATE
from quantops_exporter.checks.kill_switch import KILL_SWITCH_PATH, parse_api_answer, transition
from quantops_exporter.checks.pricing import check_spread_guard
from quantops_exporter.checks.risk import (
    POSITIONS_PATH,
    check_alloc_budget,
    check_margin_utilisation,
    open_positions,
)
from quantops_exporter.checks.thresholds import KillSwitchPolicy
from quantops_exporter.checks.trading import check_trading_mode
from quantops_exporter.checks.verdict import (
    Measure,
    Reading,
    Reason,
    Status,
    Verdict,
    error,
    fail,
    reason_for,
    unreadable_of,
)
from quantops_exporter.redact import redact
from quantops_exporter.sources.errors import SourceError
from quantops_exporter.sources.health import Dependency
from quantops_exporter.urls import endpoint

PROCEDURE = "no_positions"
FLAT_KEY = "no_positions_diagnosis:flat"
UNSEEN_GAP = 600.0  # s: longer than the check's cadence, far shorter than a weekend


class Step(StrEnum):
    """The runbook's steps (the `step` label of runbook_diagnosis_step)."""

    KILL_SWITCH = "1_kill_switch"
    TRADING_MODE = "2_trading_mode"
    BUDGET = "3_budget"
    WEIGHTS = "4_allocation_weights"
    FRESHNESS = "5_freshness"
    GATES_BLOB = "6_gates_blob"
    GUARDS = "7_spread_margin_guards"
    RECONCILE = "8_reconcile"


ADVICE = {
    Step.KILL_SWITCH: "the kill switch is engaged: disengage it once pre-open checks pass",
    Step.TRADING_MODE: "trading is not live or OANDA is disconnected: check "
    "LIVE_TRADING_ENABLED and the OANDA connection",
    Step.BUDGET: "risk:alloc_budget is not populated: check allocator-lite and the backend",
    Step.WEIGHTS: "risk:allocation_weights is missing: check allocator-lite logs",
    Step.FRESHNESS: "manifolds or signals are stale: check ws-hydrator and the signal writers",
    Step.GATES_BLOB: "the gates blob is stale: allocator-lite holds previous weights until it "
    "refreshes; do not force entries",
    Step.GUARDS: "the spread or margin guard blocks adds: inspect /api/oanda/account and "
    "allocator logs for MAX_SPREAD_BPS or margin warnings",
    Step.RECONCILE: "every step passes: trigger a manual reconcile (POST /api/trade/reconcile; "
    "the exporter never calls it); PortfolioManager also reconciles every 30 s",
}


async def _kill_switch_off(ctx: CheckContext) -> Verdict:
    url = endpoint(ctx.api_url, KILL_SWITCH_PATH)
    payload = await ctx.http.get_json(Dependency.API, url)
    with from_http(Dependency.API, url):
        engaged = parse_api_answer(payload)
    status = Status.FAIL if engaged else Status.OK
    return Verdict(status, Reason.UNEXPECTED_VALUE if engaged else Reason.NONE, "kill switch")


def _switch_on_by_the_runbook(ctx: CheckContext, now: float) -> str | None:
    """The window (see kill_switch.transition) in which the runbook keeps the switch ON, under
    the `market` policy; None outside one. Flat then is the runbook, not a fault: at the Sunday
    open the switch stays ON until the first intended session opens (Weekend §2), and the week
    replay paged FlatWhileGatesGreen 7 minutes after every open (tests/e2e/test_week_replay.py).
    """
    t = ctx.thresholds
    if t.kill_switch_policy is not KillSwitchPolicy.MARKET:
        return None
    return transition(ctx.calendar, now, t.kill_switch_grace_seconds, t.expected_sessions)


STEPS: tuple[tuple[Step, tuple[Callable[[CheckContext], Awaitable[Verdict]], ...]], ...] = (
    (Step.KILL_SWITCH, (_kill_switch_off,)),
    (Step.TRADING_MODE, (check_trading_mode,)),
    (Step.BUDGET, (check_alloc_budget,)),
    (Step.WEIGHTS, (check_allocation_weights,)),
    (Step.FRESHNESS, (check_manifold_freshness, check_signal_freshness)),
    (Step.GATES_BLOB, (check_gates_blob_freshness,)),
    (Step.GUARDS, (check_spread_guard, check_margin_utilisation)),
)


async def _run_step(
    run: Callable[[CheckContext], Awaitable[Verdict]], ctx: CheckContext
) -> Verdict:
    """A step's verdict; a step that cannot read is that step's error with its reason (the
    procedure stops at it, as an operator would), not the whole diagnosis's."""
    try:
        return await run(ctx)
    except SourceError as err:
        return error(
            reason_for(err),
            redact(" ".join(str(err).split()))[:200],
            unreadable=unreadable_of(err),
        )


def _step_readings(step: Step | None) -> tuple[Reading, ...]:
    return tuple(
        Reading(Measure.DIAGNOSIS_STEP, float(s is step), (PROCEDURE, s.value)) for s in Step
    )


async def check_no_positions(ctx: CheckContext) -> Verdict:
    """Flat while gates are green for longer than the grace: report the first failing step."""
    metrics, positions_payload = await read_both(
        ctx.stack_metrics.read(),
        ctx.http.get_json(Dependency.API, endpoint(ctx.api_url, POSITIONS_PATH)),
    )
    eligible = sum(1 for s in metrics.series(ROLLING_GATE) if s.labels.get("eligible") == "1")
    with from_http(Dependency.API, endpoint(ctx.api_url, POSITIONS_PATH)):
        positions = open_positions(positions_payload)
    now = ctx.clock()
    green = eligible >= ctx.thresholds.min_eligible
    # Seen continuously, run after run: across the weekend (no runs) it starts again, so the
    # grace applies after the open instead of "flat for 176759 s".
    flat_since = ctx.memory.holding_since(
        FLAT_KEY, green and not positions, now, max_gap=UNSEEN_GAP
    )
    if flat_since is None or now - flat_since < ctx.thresholds.flat_grace_seconds:
        why = (
            f"{len(positions)} position(s) open"
            if positions
            else f"gates not green ({eligible} eligible)"
            if not green
            else f"flat for {now - flat_since:.0f}s, within the "
            f"{ctx.thresholds.flat_grace_seconds:.0f}s grace"
            if flat_since is not None
            else ""
        )
        return Verdict(
            Status.OK, Reason.NONE, f"no diagnosis needed: {why}", readings=_step_readings(None)
        )
    flat_for = now - flat_since
    closes = ctx.calendar.next_close(now)
    exit_window = ctx.thresholds.session_exit_minutes * 60
    if closes is not None and closes - now <= exit_window:
        # ExitBeforeClose flattened the book for the close: flat is the stack's plan. Without
        # this the Friday close was quiet only while the flat grace was at least the window.
        return Verdict(
            Status.OK,
            Reason.NONE,
            f"no diagnosis needed: flat for {flat_for:.0f}s within SESSION_EXIT_MINUTES "
            f"({exit_window / 60:g} min) of the close",
            readings=_step_readings(None),
        )
    window = _switch_on_by_the_runbook(ctx, now)
    if window is not None:
        step1 = await _run_step(_kill_switch_off, ctx)
        if step1.status is Status.FAIL:  # engaged, as the runbook has it now
            return Verdict(
                Status.OK,
                Reason.NONE,
                f"no diagnosis needed: flat for {flat_for:.0f}s, the kill switch is ON as the "
                f"runbook keeps it ({window})",
                readings=_step_readings(None),
            )
    for step, checks in STEPS:
        for check in checks:
            verdict = await _run_step(check, ctx)
            if verdict.status in (Status.FAIL, Status.ERROR):
                # A step that could not read leaves the diagnosis undecided: error, not fail.
                return (error if verdict.status is Status.ERROR else fail)(
                    verdict.reason,
                    f"flat for {flat_for:.0f}s with {eligible} eligible; step {step.value}: "
                    f"{ADVICE[step]} ({verdict.summary})",
                    readings=_step_readings(step),
                    observations={"step": step.value},
                    unreadable=verdict.unreadable,
                )
    return fail(
        Reason.UNEXPECTED_VALUE,
        f"flat for {flat_for:.0f}s with {eligible} eligible; steps 1-7 pass; step "
        f"{Step.RECONCILE.value}: {ADVICE[Step.RECONCILE]}",
        readings=_step_readings(Step.RECONCILE),
        observations={"step": Step.RECONCILE.value},
    )
