"""What each simulator scenario must do to the checks: the oracle the scenario tests hold the
exporter to (kept in the tests, not in the package, so the daemon cannot grade itself)."""

from __future__ import annotations

from quantops_exporter.simulator.scenarios import Scenario

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
    # One endpoint: the kill switch alone cannot read (the diagnosis reads it only when flat).
    Scenario.KILL_SWITCH_500: frozenset({"kill_switch"}),
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
