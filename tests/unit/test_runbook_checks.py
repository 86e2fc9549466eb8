"""The runbook's evaluators, one by one, on canned payloads of every shape the contract lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantops_exporter.checks.allocation import judge_allocation_status, judge_cadence, judge_topk
from quantops_exporter.checks.gates import (
    judge_gates_eligible,
    judge_gates_sanity,
    judge_span_integrity,
)
from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.checks.pricing import judge_spreads, spreads_bps
from quantops_exporter.checks.recovery import Margin, over_cap, to_release
from quantops_exporter.checks.risk import (
    Position,
    budget_from,
    judge_exposure,
    judge_margin,
    judge_position_caps,
    margin_utilisation,
    open_positions,
    total_allocation,
)
from quantops_exporter.checks.sessions import judge_sessions
from quantops_exporter.checks.thresholds import Thresholds, WeightsScale
from quantops_exporter.checks.trading import judge_trading_mode
from quantops_exporter.checks.verdict import Measure, Reason, Status, Verdict
from quantops_exporter.checks.warmup import judge_candles
from quantops_exporter.market import Session
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.stack_metrics import parse_exposition
from tests.factories import FrozenClock, make_ctx

FIXTURES = Path(__file__).parent.parent / "fixtures"
PAIRS = ("EUR_USD", "USD_JPY", "GBP_USD", "EUR_JPY", "USD_CAD", "NZD_USD", "AUD_USD", "USD_CHF")
T = Thresholds()


def fixture(name: str) -> object:
    """A canned stack payload."""
    return json.loads((FIXTURES / name).read_text())


# --- trading mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"mode": "live", "oanda_connected": True}, Status.OK),
        ({"mode": "paper", "oanda_connected": True}, Status.FAIL),
        ({"mode": "live", "oanda_connected": False}, Status.FAIL),
        (
            {
                "practice_trading_enabled": False,
                "auto_trading_enabled": True,
                "environment": "live",
            },
            Status.OK,
        ),
        ({"auto_trading_enabled": True, "environment": "practice"}, Status.FAIL),
        ({"auto_trading_enabled": False, "environment": "live"}, Status.FAIL),
    ],
)
def test_trading_mode_both_shapes(payload: object, status: Status) -> None:
    """The runbook shape and the OpenAPI shape are both judged."""
    assert judge_trading_mode(payload).status is status


def test_trading_mode_unknown_shape_is_bad_payload() -> None:
    """Neither shape: bad payload, not a guess."""
    with pytest.raises(BadPayload):
        judge_trading_mode({"status": "running"})


# --- gates --------------------------------------------------------------------------------

METRICS = (FIXTURES / "stack_metrics.txt").read_text()


def test_eligible_are_counted_not_summed() -> None:
    """Every sep_rolling_gate series is 1; only eligible="1" ones count (4 of 8 here)."""
    verdict = judge_gates_eligible(parse_exposition(METRICS), PAIRS, 3)
    assert verdict.status is Status.OK
    assert [r.value for r in verdict.readings if r.measure is Measure.GATES_ELIGIBLE] == [4.0]
    buffers = {r.labels: r.value for r in verdict.readings if r.measure is Measure.GATE_BUFFER}
    assert buffers[("USD_CHF",)] == 0.15


def test_too_few_eligible_fails_and_missing_series_is_missing() -> None:
    """Below the minimum fails with threshold; no series at all fails with missing."""
    assert judge_gates_eligible(parse_exposition(METRICS), PAIRS, 5).reason is Reason.THRESHOLD
    assert judge_gates_eligible(parse_exposition("up 1\n"), PAIRS, 3).reason is Reason.MISSING


def test_buffers_only_for_configured_instruments() -> None:
    """An instrument seen on the wire but not configured never becomes a label value."""
    text = 'sep_rolling_gate{instrument="XAU_EVIL",eligible="1",buf="0.1"} 1\n'
    verdict = judge_gates_eligible(parse_exposition(text), PAIRS, 1)
    assert all(r.labels == () for r in verdict.readings)


def test_gates_sanity_on_the_contract_examples() -> None:
    """The echo-gate example passes; the older hysteresis example passes on what it has."""
    echo = {
        "ts": 1758059154076,
        "gates": {"EUR_USD": 1},
        "repetition": {"EUR_USD": {"count_1h": 4, "first_seen_ms": 1758058120000}},
        "hazard": {"EUR_USD": 0.12},
        "bufs": {"EUR_USD": 0},
        "cooldowns": {"EUR_USD": 0},
    }
    assert judge_gates_sanity(echo, PAIRS, T).status is Status.OK
    old = {
        "ts": 1726339200123,
        "gates": {"EUR_USD": 1, "USD_CHF": 0, "USD_JPY": 1},
        "cooldowns": {"EUR_USD": 0},
        "bufs": {"EUR_USD": 0.10, "USD_CHF": 0.15},
    }
    verdict = judge_gates_sanity(old, PAIRS, T)
    assert verdict.status is Status.OK and "hysteresis" in verdict.summary


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"repetition": {"EUR_USD": {"count_1h": 2}}}, "count_1h 2 < ECHO_MIN_REPETITIONS"),
        ({"hazard": {"EUR_USD": 0.9}}, "hazard 0.9 > ECHO_HAZARD_MAX"),
        ({"hazard": {"EUR_USD": 0.1, "USD_JPY": -0.2}}, "USD_JPY hazard -0.2 outside [0, 1]"),
        ({"gates": {"EUR_USD": 1, "XAU_USD": 0}}, "1 instrument(s) not in HOTBAND_PAIRS"),
    ],
)
def test_gates_sanity_failures(change: dict[str, object], fragment: str) -> None:
    """Too few repetitions, too high a hazard, a hazard out of range, an unknown instrument."""
    blob = {
        "ts": 1,
        "gates": {"EUR_USD": 1},
        "repetition": {"EUR_USD": {"count_1h": 4}},
        "hazard": {"EUR_USD": 0.12},
    } | change
    verdict = judge_gates_sanity(blob, PAIRS, T)
    assert verdict.status is Status.FAIL
    assert fragment in verdict.summary


def test_span_integrity() -> None:
    """1 is ok, 0 fails, absent is missing."""
    assert judge_span_integrity(parse_exposition("sep_span_integrity_ok 1\n")).status is Status.OK
    assert judge_span_integrity(parse_exposition("sep_span_integrity_ok 0\n")).status is (
        Status.FAIL
    )
    assert judge_span_integrity(parse_exposition("")).reason is Reason.MISSING


# --- sessions -----------------------------------------------------------------------------


def test_sessions_ok_when_an_intended_one_is_open() -> None:
    """London open: ok, with a gauge for every session."""
    verdict = judge_sessions(
        {Session.LONDON}, (Session.TOKYO, Session.LONDON, Session.NEW_YORK), True
    )
    assert verdict.status is Status.OK
    assert {r.labels[0]: r.value for r in verdict.readings} == {
        "sydney": 0.0,
        "tokyo": 0.0,
        "london": 1.0,
        "new_york": 0.0,
    }


def test_sessions_never_fail() -> None:
    """Only Sydney open, or the weekend: skipped, not failed (the calendar is not a fault)."""
    assert judge_sessions({Session.SYDNEY}, (Session.LONDON,), True).reason is Reason.SESSION_CLOSED
    assert judge_sessions(set(), (Session.LONDON,), False).reason is Reason.MARKET_CLOSED


# --- margin, budget, positions, exposure --------------------------------------------------


def test_margin_from_the_oanda_account_with_string_decimals() -> None:
    """The wrapped OANDA summary with string decimals gives used / (used + available)."""
    ratio = margin_utilisation(fixture("oanda_account.json"))
    assert ratio == pytest.approx(5300 / 100000)
    assert judge_margin(Margin(5300, 94700), 0.30).status is Status.OK
    assert judge_margin(Margin(30, 70), 0.30).status is Status.FAIL  # at the limit adds stop


def test_margin_unwrapped_account_and_bad_decimals() -> None:
    """A bare account body works; a non-numeric decimal is a bad payload."""
    assert margin_utilisation({"marginUsed": "30", "marginAvailable": "70"}) == 0.3
    with pytest.raises(BadPayload):
        margin_utilisation({"account": {"marginUsed": "lots", "marginAvailable": "1"}})
    with pytest.raises(BadPayload):
        margin_utilisation({"account": {"marginUsed": "NaN", "marginAvailable": "1"}})


def test_position_caps() -> None:
    """cap = min(budget/K, PM_MAX_PER_POS_PCT x budget); a position above it fails."""
    positions = open_positions(fixture("oanda_positions.json"))
    assert [p.instrument for p in positions] == ["EUR_USD", "USD_JPY"]  # the closed one left out
    verdict = judge_position_caps(positions, 27000, 3, 0.10, PAIRS)
    assert verdict.status is Status.OK  # cap 2700
    over = judge_position_caps([Position("EUR_USD", 2701)], 27000, 3, 0.10, PAIRS)
    assert over.status is Status.FAIL and "EUR_USD 2701" in over.summary
    assert judge_position_caps([Position("EUR_USD", 5000)], 27000, 3, 0.50, PAIRS).status is (
        Status.OK
    )  # with a 50% cap, budget/K = 9000 binds


# Hand-computed (utilisation = used / (used + available); closing a position moves its margin
# from used to available, so used + available, the NAV, stays): to reach t, release
# used - t x (used + available).
#   40,000 / 60,000: NAV 100,000, u 0.40 -> 0.30 at 30,000 used: 10,000; 0.27 at 27,000: 13,000
#   45 / 55 (the margin_high scenario's 0.45): NAV 100 -> 15 and 18
#   1,000 / 0 (nothing available): u 1.00 -> 700 and 730
#   52,500 / 97,500: NAV 150,000, u 0.35 -> 45,000: 7,500; 40,500: 12,000
RELEASES = [
    ((40_000, 60_000), 0.30, 10_000, 13_000),
    ((45, 55), 0.30, 15, 18),
    ((1_000, 0), 0.30, 700, 730),
    ((52_500, 97_500), 0.30, 7_500, 12_000),
    ((52_500, 97_500), 0.40, 0, 0),  # 0.35 is within a 0.40 cap
    ((30_000, 70_000), 0.30, 0, 3_000),  # at the cap: below it needs more than 0
]


@pytest.mark.parametrize(("margins", "high", "below", "buffered"), RELEASES)
def test_margin_to_release_matches_hand_computed_cases(
    margins: tuple[float, float], high: float, below: float, buffered: float
) -> None:
    """Recovery §3 sized: the release that brings utilisation to the cap and to 3 points
    under it (the runbook's <=3% buffer), NAV unchanged by closing."""
    margin = Margin(*margins)
    assert to_release(margin, high) == pytest.approx(below)
    assert to_release(margin, high - 0.03) == pytest.approx(buffered)
    after = Margin(margin.used - buffered, margin.available + buffered)
    assert after.ratio == pytest.approx(min(margin.ratio, high - 0.03))


def test_both_summaries_name_the_margin_to_release_at_40000_of_100000() -> None:
    """The issue's own case: used 40,000, available 60,000 (0.40): margin_utilisation and
    exposure_within_cap say to release more than 10,000, and 13,000 to reach 0.27; the gauge
    carries both figures."""
    margin = Margin(40_000, 60_000)
    sized = (
        "release more than 10,000 of margin (used 40,000 of 100,000) to get below 0.30, "
        "13,000 to reach 0.27 (the runbook's <=3% buffer)"
    )
    for verdict in (
        judge_margin(margin, 0.30),
        judge_exposure(margin, 0.2, 0.30, 0.30, "over their per-position cap 2,700: EUR_USD 9,000"),
    ):
        assert verdict.status is Status.FAIL
        assert sized in verdict.summary
        released = {
            r.labels: r.value
            for r in verdict.readings
            if r.measure is Measure.RECOVERY_MARGIN_TO_RELEASE
        }
        assert released == {
            ("below_cap",): pytest.approx(10_000),
            ("buffer",): pytest.approx(13_000),
        }
    exposure = judge_exposure(
        margin, 0.2, 0.30, 0.30, "over their per-position cap 2,700: EUR_USD 9,000"
    )
    assert "EUR_USD 9,000" in exposure.summary
    within = judge_margin(Margin(20_000, 80_000), 0.30)
    assert {
        r.value for r in within.readings if r.measure is Measure.RECOVERY_MARGIN_TO_RELEASE
    } == {0.0}
    assert "release" not in within.summary


def test_positions_over_their_cap_are_named_largest_first() -> None:
    """Which positions exceed min(budget/K, PM_MAX_PER_POS_PCT x budget), in the operator's
    numbers; none is said plainly."""
    positions = [Position("EUR_USD", 2_000), Position("USD_JPY", 9_000), Position("GBP_USD", 3_100)]
    assert over_cap(positions, 2_700) == (
        "over their per-position cap 2,700: USD_JPY 9,000, GBP_USD 3,100"
    )
    assert over_cap(positions[:1], 2_700) == "no position is over its per-position cap 2,700"
    many = [Position(f"P{i}_USD", 5_000 + i) for i in range(7)]
    assert over_cap(many, 1).endswith("and 2 more")


def test_budget_fields() -> None:
    """The budget field, else margin_available x target_pct; neither is a bad payload."""
    assert budget_from({"budget": 27000}) == 27000
    assert budget_from({"margin_available": 90000, "target_pct": 0.3}) == pytest.approx(27000)
    with pytest.raises(BadPayload):
        budget_from({"balance": 1})


@pytest.mark.parametrize(
    ("weights", "scale", "total"),
    [
        ({"A": 0.1, "B": 0.1, "C": 0.08}, WeightsScale.AUTO, 0.28),  # fractions of the budget
        ({"A": 0.3091, "B": 0.2852, "C": 0.2220, "D": 0.1836}, WeightsScale.AUTO, 0.30 * 0.9999),
        ({"A": 0.118, "B": 0.103, "C": 0.101}, WeightsScale.AUTO, 0.322),  # the TEL incident
        ({"A": 0.5, "B": 0.5}, WeightsScale.BUDGET, 1.0),
        ({"A": 0.5, "B": 0.3}, WeightsScale.NORMALIZED, 0.24),
    ],
)
def test_total_allocation_both_scales(
    weights: dict[str, float], scale: WeightsScale, total: float
) -> None:
    """Weights summing to 1 are shares of the target; otherwise they are budget fractions."""
    assert total_allocation(weights, scale, 0.30) == pytest.approx(total, abs=1e-4)


def test_exposure_names_the_recovery_procedure() -> None:
    """Beyond 30% the summary carries the runbook's recovery steps."""
    verdict = judge_exposure(Margin(45, 55), 0.2, 0.30, 0.30)
    assert verdict.status is Status.FAIL
    assert "engage the kill switch" in verdict.summary
    assert "drain_overcap_only.sh --dry-run" in verdict.summary
    assert judge_exposure(Margin(10, 90), 0.3, 0.30, 0.30).status is Status.OK


# --- allocator and allocation -------------------------------------------------------------


def test_topk_counts_selected_equal_to_one() -> None:
    """Three 1s among eight series match ALLOC_TOP_K=3; four do not."""
    metrics = parse_exposition(METRICS)
    assert judge_topk(metrics, 3).status is Status.OK
    assert judge_topk(metrics, 4).reason is Reason.MISMATCH


def test_allocation_status_total_and_top_k() -> None:
    """Overcap fails threshold; a weight outside the Top-K fails mismatch; zero weights are fine."""
    top = ["EUR_USD", "USD_JPY", "GBP_USD"]
    ok = {"EUR_USD": 0.1, "USD_JPY": 0.1, "GBP_USD": 0.08, "USD_CHF": 0.0}
    assert judge_allocation_status(ok, top, WeightsScale.AUTO, 0.30, PAIRS).status is Status.OK
    over = {"EUR_USD": 0.14, "USD_JPY": 0.12, "GBP_USD": 0.10}
    assert (
        judge_allocation_status(over, top, WeightsScale.AUTO, 0.30, PAIRS).reason
        is Reason.THRESHOLD
    )
    off = {"EUR_USD": 0.1, "USD_CHF": 0.05}
    verdict = judge_allocation_status(off, top, WeightsScale.AUTO, 0.30, PAIRS)
    assert verdict.reason is Reason.MISMATCH and "USD_CHF" in verdict.summary


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        ({"ts": 1_800_000_000, "interval": 60}, Status.OK, Reason.NONE),
        ({"ts": 1_800_000_000, "interval_sec": 60}, Status.OK, Reason.NONE),
        ({"interval": 60}, Status.OK, Reason.NONE),
        ({"ts": 1_800_000_000, "interval": 600}, Status.FAIL, Reason.MISMATCH),
        ({"ts": 1_799_999_000, "interval": 60}, Status.FAIL, Reason.STALE),
        ({"ts": 1_800_000_033, "interval": 60}, Status.OK, Reason.NONE),  # within the skew
        ({"ts": 1_800_003_630, "interval": 60}, Status.ERROR, Reason.CLOCK_SKEW),  # an hour ahead
    ],
)
def test_allocator_cadence(payload: object, status: Status, reason: Reason) -> None:
    """interval or interval_sec equals 60; a ts older than 180 s is stale while open."""
    verdict = judge_cadence(payload, 60, 180, 1_800_000_030, market_open=True)
    assert (verdict.status, verdict.reason) == (status, reason)


def test_allocator_ts_not_judged_while_closed() -> None:
    """allocator-lite keeps the old weights over the weekend: an old ts is fine then."""
    verdict = judge_cadence({"ts": 1, "interval": 60}, 60, 180, 1_800_000_000, market_open=False)
    assert verdict.status is Status.OK


# --- candles and spreads ------------------------------------------------------------------


def candles(count: int, newest: float) -> dict[str, object]:
    """An /api/candles body with `count` M1 candles, the newest at `newest`."""
    return {
        "items": [
            {"time": newest - 60 * k, "mid": {"c": "1.1"}, "complete": True} for k in range(count)
        ]
    }


def test_candles() -> None:
    """120 fresh candles pass; 80 fail; an old newest candle is stale only while open."""
    now = 1_800_000_000.0
    assert judge_candles(candles(120, now - 60), "EUR_USD", 120, 180, now, True, 5).status is (
        Status.OK
    )
    assert judge_candles(candles(80, now - 60), "EUR_USD", 120, 180, now, True, 5).reason is (
        Reason.THRESHOLD
    )
    assert judge_candles(candles(120, now - 900), "EUR_USD", 120, 180, now, True, 5).reason is (
        Reason.STALE
    )
    assert judge_candles(candles(120, now - 900), "EUR_USD", 120, 180, now, False, 5).status is (
        Status.OK
    )


def test_after_an_open_the_candles_age_counts_from_it() -> None:
    """The close's last candle (two days old) is not stale a minute after the Sunday open: no
    M1 candle has completed yet. With still none 200 s after the open (max 180 s) it is, and
    the summary says since when; mid-week (the newest after the open) the age is the candle's."""
    opened = 1_800_000_000.0
    friday = opened - 2 * 86_400

    def judged(now: float, newest: float) -> Verdict:
        return judge_candles(candles(120, newest), "EUR_USD", 120, 180, now, True, 5, opened)

    assert judged(opened + 60, friday).status is Status.OK
    late = judged(opened + 200, friday)
    assert (late.status, late.reason) == (Status.FAIL, Reason.STALE)
    assert "no EUR_USD candle since the open 200s ago (max 180s)" in late.summary
    assert judged(opened + 86_400, opened + 86_400 - 900).reason is Reason.STALE
    assert "newest EUR_USD candle is 900s old" in judged(opened + 86_400, opened + 85_500).summary


def test_candles_with_oanda_rfc3339_times() -> None:
    """OANDA-style RFC 3339 times with nanoseconds-free fractions parse."""
    body = {"candles": [{"time": "2027-01-15T08:00:00.000000Z", "complete": True}] * 3}
    verdict = judge_candles(body, "EUR_USD", 3, 180, 1_800_000_000.0, False, 5)
    assert verdict.status is Status.OK


def test_spreads_from_both_pricing_shapes() -> None:
    """The OANDA list (string prices) and the V3 map give the same spreads."""
    listed = spreads_bps(fixture("oanda_pricing.json"))
    mapped = spreads_bps({"prices": {"EUR_USD": {"bid": 1.10000, "ask": 1.10011}}})
    assert listed["EUR_USD"] == pytest.approx(mapped["EUR_USD"], rel=1e-6)
    assert "USD_JPY" not in listed  # empty asks: no quote, not a crash
    verdict = judge_spreads(listed, ("EUR_USD", "USD_JPY"), 5.0)
    assert verdict.status is Status.OK and "no quote for USD_JPY" in verdict.summary
    assert judge_spreads({"EUR_USD": 12.0}, ("EUR_USD",), 5.0).status is Status.FAIL


# --- memory -------------------------------------------------------------------------------


def test_memory_holding_since_and_change_detection() -> None:
    """A condition's start is kept while it holds; a value's change time is unknown until seen."""
    memory = CheckMemory()
    assert memory.holding_since("flat", True, 100) == 100
    assert memory.holding_since("flat", True, 160) == 100
    assert memory.holding_since("flat", False, 170) is None
    assert memory.holding_since("flat", True, 180) == 180
    assert memory.changed_at("w", b"a", 100) is None
    assert memory.changed_at("w", b"a", 110) is None
    assert memory.changed_at("w", b"b", 120) == 120
    assert memory.changed_at("w", b"b", 130) == 120


async def test_a_diagnosis_step_that_cannot_read_is_reported_as_that_step() -> None:
    """Flat while green, and step 1 (the kill switch) cannot be read: the diagnosis is error
    with step 1's reason, names the step, and keeps every runbook_diagnosis_step series."""
    from quantops_exporter.checks.diagnosis import Step, check_no_positions
    from quantops_exporter.sources import errors

    class Http:
        async def get_json(self, dependency: object, url: str, params: object = None) -> object:
            if url.endswith("/api/kill-switch"):
                raise errors.Unreachable(f"GET {url}: connection refused")
            return {"positions": []}

        async def get_text(self, dependency: object, url: str, params: object = None) -> str:
            return "\n".join(
                f'sep_rolling_gate{{instrument="{i}",eligible="1"}} 1'
                for i in ("EUR_USD", "USD_JPY", "GBP_USD")
            )

    verdict = await check_no_positions(make_ctx(http=Http(), flat_grace_seconds=0))
    assert (verdict.status, verdict.reason) == (Status.ERROR, Reason.UNREACHABLE)
    assert verdict.observations["step"] == Step.KILL_SWITCH.value
    assert "step 1_kill_switch" in verdict.summary and "connection refused" in verdict.summary
    on = {r.labels[1]: r.value for r in verdict.readings if r.measure is Measure.DIAGNOSIS_STEP}
    assert set(on) == {s.value for s in Step} and on[Step.KILL_SWITCH.value] == 1.0


def test_a_condition_not_seen_for_a_while_starts_again() -> None:
    """The diagnosis's 'flat since' must not span the weekend (no runs while closed): a
    condition last seen more than max_gap ago counts from now."""
    memory = CheckMemory()
    assert memory.holding_since("flat", True, 1000, max_gap=600) == 1000
    assert memory.holding_since("flat", True, 1500, max_gap=600) == 1000  # seen 500 s ago
    friday, sunday = 2000.0, 2000.0 + 48 * 3600
    assert memory.holding_since("flat", True, friday, max_gap=600) == 1000
    assert memory.holding_since("flat", True, sunday, max_gap=600) == sunday


class FlatBehindAnEngagedSwitch:
    """The stack's API: flat, the kill switch engaged, three instruments eligible."""

    async def get_json(self, dependency: object, url: str, params: object = None) -> object:
        return {"kill_switch": True} if url.endswith("/api/kill-switch") else {"positions": []}

    async def get_text(self, dependency: object, url: str, params: object = None) -> str:
        return "\n".join(
            f'sep_rolling_gate{{instrument="{i}",eligible="1"}} 1'
            for i in ("EUR_USD", "USD_JPY", "GBP_USD")
        )


async def diagnosed_flat_at(new_york: str, **thresholds: object) -> Verdict:
    """The no-positions diagnosis of a flat stack behind an engaged switch, at a New York
    moment on the FX calendar, with no flat grace (and `thresholds`)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from quantops_exporter.checks.diagnosis import check_no_positions
    from quantops_exporter.market import FxCalendar

    at = datetime.fromisoformat(new_york).replace(tzinfo=ZoneInfo("America/New_York"))
    ctx = make_ctx(
        http=FlatBehindAnEngagedSwitch(),
        calendar=FxCalendar(),
        clock=FrozenClock(at.timestamp()),
        flat_grace_seconds=0,
        **thresholds,
    )
    return await check_no_positions(ctx)


@pytest.mark.parametrize(
    ("new_york", "policy", "diagnosed"),
    [
        ("2026-02-22T17:10:00", "market", False),  # Sunday open, Tokyo not open yet: ON is right
        ("2026-02-25T10:00:00", "market", True),  # Wednesday: ON is the cause
        ("2026-02-22T17:10:00", "always_off", True),  # the policy never keeps it ON
    ],
)
async def test_flat_behind_a_switch_the_runbook_keeps_on_is_no_fault(
    new_york: str, policy: str, diagnosed: bool
) -> None:
    """Weekend §2 leaves the kill switch ON after the open until the first intended session
    opens: flat while green then is the runbook, not step 1 of the diagnosis (the week replay
    paged FlatWhileGatesGreen seven minutes after every Sunday open)."""
    from quantops_exporter.checks.diagnosis import Step

    verdict = await diagnosed_flat_at(new_york, kill_switch_policy=policy)
    if diagnosed:
        assert verdict.status is Status.FAIL
        assert verdict.observations["step"] == Step.KILL_SWITCH.value
    else:
        assert verdict.status is Status.OK
        assert "the kill switch is ON as the runbook keeps it" in verdict.summary


@pytest.mark.parametrize(
    ("new_york", "exit_minutes", "diagnosed"),
    [
        ("2026-02-27T16:52:00", 10, False),  # Friday, 8 min before the close, 10-min window
        ("2026-02-27T16:45:00", 10, True),  # before the window: flat is a fault
        ("2026-02-27T16:52:00", 5, True),  # the stack's default window has not begun
    ],
)
async def test_flat_in_the_exit_window_before_the_close_is_no_fault(
    new_york: str, exit_minutes: float, diagnosed: bool
) -> None:
    """ExitBeforeClose flattens SESSION_EXIT_MINUTES before the close: flat then is the plan,
    whatever the flat grace (the Friday close was quiet only while grace >= the window)."""
    verdict = await diagnosed_flat_at(new_york, session_exit_minutes=exit_minutes)
    assert (verdict.status is Status.FAIL) is diagnosed, verdict.summary
    if not diagnosed:
        assert "within SESSION_EXIT_MINUTES" in verdict.summary
