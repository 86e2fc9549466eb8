"""Named simulator scenarios: `healthy` and one per failure mode a check must catch."""

from __future__ import annotations

from enum import StrEnum


class Scenario(StrEnum):
    """What the simulated stack is doing; the value is the name used on the CLI and API."""

    HEALTHY = "healthy"
    STALE_MANIFOLD = "stale_manifold"
    SIGNALS_STALLED = "signals_stalled"
    GATES_BLOB_STALE = "gates_blob_stale"
    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    KILL_SWITCH_MISMATCH = "kill_switch_mismatch"
    BAD_PAYLOAD = "bad_payload"
    VALKEY_DOWN = "valkey_down"
    MODE_NOT_LIVE = "mode_not_live"
    OANDA_DISCONNECTED = "oanda_disconnected"
    TOO_FEW_ELIGIBLE = "too_few_eligible"
    HAZARD_INSANE = "hazard_insane"
    MARGIN_HIGH = "margin_high"
    TOPK_MISMATCH = "topk_mismatch"
    POSITION_OVERCAP = "position_overcap"
    ALLOCATOR_CADENCE_WRONG = "allocator_cadence_wrong"
    SPAN_INTEGRITY_BROKEN = "span_integrity_broken"
    ALLOCATION_OVERCAP = "allocation_overcap"
    ALLOCATION_OFF_TOPK = "allocation_off_topk"
    CANDLES_SHORT = "candles_short"
    ALLOCATOR_DOWN = "allocator_down"
    BUDGET_MISSING = "budget_missing"
    WEIGHTS_MISSING = "weights_missing"
    SPREAD_WIDE = "spread_wide"
    FLAT_WHILE_GREEN = "flat_while_green"
    API_500 = "api_500"
    API_GARBAGE = "api_garbage"
    API_SLOW = "api_slow"
    API_OVERSIZED = "api_oversized"


DESCRIPTIONS: dict[Scenario, str] = {
    Scenario.HEALTHY: "every writer on cadence; kill switch off while the market is open",
    Scenario.STALE_MANIFOLD: "the ws-hydrator stopped updating EUR_USD ten minutes ago",
    Scenario.SIGNALS_STALLED: "no signal indexed for any instrument in fifteen minutes",
    Scenario.GATES_BLOB_STALE: "the rolling evaluator last wrote the gates blob ten minutes ago",
    Scenario.KILL_SWITCH_ENGAGED: "the kill switch is engaged (API and Valkey agree); flat",
    Scenario.KILL_SWITCH_MISMATCH: "the API says off while ops:kill_switch says engaged",
    Scenario.BAD_PAYLOAD: "EUR_USD's manifold is not JSON and the gates blob is a HASH",
    Scenario.VALKEY_DOWN: "the Valkey server is stopped",
    Scenario.MODE_NOT_LIVE: "trading mode is paper, not live; flat",
    Scenario.OANDA_DISCONNECTED: "the backend lost its OANDA connection; flat",
    Scenario.TOO_FEW_ELIGIBLE: "only two instruments pass the gates",
    Scenario.HAZARD_INSANE: "an eligible instrument's hazard is 1.3 (outside [0, 1])",
    Scenario.MARGIN_HIGH: "margin utilisation is 0.45",
    Scenario.TOPK_MISMATCH: "four instruments are selected while ALLOC_TOP_K is 3",
    Scenario.POSITION_OVERCAP: "one position uses more margin than its cap",
    Scenario.ALLOCATOR_CADENCE_WRONG: "allocator-lite reports interval 600 (the old default)",
    Scenario.SPAN_INTEGRITY_BROKEN: "sep_span_integrity_ok is 0",
    Scenario.ALLOCATION_OVERCAP: "total allocation is 0.36",
    Scenario.ALLOCATION_OFF_TOPK: "a weight sits on an instrument outside the Top-K",
    Scenario.CANDLES_SHORT: "/api/candles returns 80 of 120 candles",
    Scenario.ALLOCATOR_DOWN: "allocator-lite is not listening",
    Scenario.BUDGET_MISSING: "risk:alloc_budget is missing; flat",
    Scenario.WEIGHTS_MISSING: "risk:allocation_weights is missing; flat",
    Scenario.SPREAD_WIDE: "EUR_USD's spread is 12 bps; flat",
    Scenario.FLAT_WHILE_GREEN: "no positions though gates are green and every step passes",
    Scenario.API_500: "every backend endpoint answers HTTP 500",
    Scenario.API_GARBAGE: "every backend endpoint answers an HTML login page",
    Scenario.API_SLOW: "every backend endpoint hangs",
    Scenario.API_OVERSIZED: "every backend endpoint answers a 5 MiB body",
}

_VALKEY_READERS = frozenset(
    {
        "valkey_ping",
        "kill_switch",
        "manifold_freshness",
        "signal_freshness",
        "gates_blob_freshness",
        "gates_sanity",
        "position_caps",
        "alloc_budget",
        "allocation_weights",
    }
)
# Every check that reads the backend API or its /metrics.
_API_READERS = frozenset(
    {
        "kill_switch",
        "trading_mode",
        "gates_eligible",
        "margin_utilisation",
        "allocator_topk",
        "position_caps",
        "span_integrity",
        "allocation_status",
        "candles",
        "allocator_health",
        "spread_guard",
        "no_positions_diagnosis",
        "exposure_within_cap",
    }
)

# The checks each scenario must fail (and only these); the integration tests hold them to it.
EXPECTED_FAILURES: dict[Scenario, frozenset[str]] = {
    Scenario.HEALTHY: frozenset(),
    Scenario.STALE_MANIFOLD: frozenset({"manifold_freshness"}),
    Scenario.SIGNALS_STALLED: frozenset({"signal_freshness"}),
    Scenario.GATES_BLOB_STALE: frozenset({"gates_blob_freshness"}),
    Scenario.KILL_SWITCH_ENGAGED: frozenset({"kill_switch", "no_positions_diagnosis"}),
    Scenario.KILL_SWITCH_MISMATCH: frozenset({"kill_switch"}),
    Scenario.BAD_PAYLOAD: frozenset({"manifold_freshness", "gates_blob_freshness", "gates_sanity"}),
    Scenario.VALKEY_DOWN: _VALKEY_READERS,
    Scenario.MODE_NOT_LIVE: frozenset({"trading_mode", "no_positions_diagnosis"}),
    Scenario.OANDA_DISCONNECTED: frozenset({"trading_mode", "no_positions_diagnosis"}),
    Scenario.TOO_FEW_ELIGIBLE: frozenset({"gates_eligible"}),
    Scenario.HAZARD_INSANE: frozenset({"gates_sanity"}),
    Scenario.MARGIN_HIGH: frozenset({"margin_utilisation", "exposure_within_cap"}),
    Scenario.TOPK_MISMATCH: frozenset({"allocator_topk"}),
    Scenario.POSITION_OVERCAP: frozenset({"position_caps"}),
    Scenario.ALLOCATOR_CADENCE_WRONG: frozenset({"allocator_cadence"}),
    Scenario.SPAN_INTEGRITY_BROKEN: frozenset({"span_integrity"}),
    Scenario.ALLOCATION_OVERCAP: frozenset({"allocation_status", "exposure_within_cap"}),
    Scenario.ALLOCATION_OFF_TOPK: frozenset({"allocation_status"}),
    Scenario.CANDLES_SHORT: frozenset({"candles"}),
    Scenario.ALLOCATOR_DOWN: frozenset({"allocator_cadence", "allocator_health"}),
    Scenario.BUDGET_MISSING: frozenset({"alloc_budget", "no_positions_diagnosis"}),
    Scenario.WEIGHTS_MISSING: frozenset({"allocation_weights", "no_positions_diagnosis"}),
    Scenario.SPREAD_WIDE: frozenset({"spread_guard", "no_positions_diagnosis"}),
    Scenario.FLAT_WHILE_GREEN: frozenset({"no_positions_diagnosis"}),
    Scenario.API_500: _API_READERS,
    # /health answering 200 (even with an HTML body) still counts as up.
    Scenario.API_GARBAGE: _API_READERS - {"allocator_health"},
    Scenario.API_SLOW: _API_READERS,
    Scenario.API_OVERSIZED: _API_READERS,
}

# Which diagnosis step each flat scenario must report.
DIAGNOSIS_STEPS: dict[Scenario, str] = {
    Scenario.KILL_SWITCH_ENGAGED: "1_kill_switch",
    Scenario.MODE_NOT_LIVE: "2_trading_mode",
    Scenario.OANDA_DISCONNECTED: "2_trading_mode",
    Scenario.BUDGET_MISSING: "3_budget",
    Scenario.WEIGHTS_MISSING: "4_allocation_weights",
    Scenario.SPREAD_WIDE: "7_spread_margin_guards",
    Scenario.FLAT_WHILE_GREEN: "8_reconcile",
}
