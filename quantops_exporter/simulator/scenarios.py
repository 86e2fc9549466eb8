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
    KILL_SWITCH_500 = "kill_switch_500"
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
    Scenario.KILL_SWITCH_500: "/api/kill-switch answers HTTP 500; every other endpoint answers",
    Scenario.API_GARBAGE: "every backend endpoint answers an HTML login page",
    Scenario.API_SLOW: "every backend endpoint hangs",
    Scenario.API_OVERSIZED: "every backend endpoint answers a 5 MiB body",
}
