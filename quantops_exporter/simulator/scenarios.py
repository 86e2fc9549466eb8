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


DESCRIPTIONS: dict[Scenario, str] = {
    Scenario.HEALTHY: "every writer on cadence; kill switch off while the market is open",
    Scenario.STALE_MANIFOLD: "the ws-hydrator stopped updating EUR_USD ten minutes ago",
    Scenario.SIGNALS_STALLED: "no signal indexed for any instrument in fifteen minutes",
    Scenario.GATES_BLOB_STALE: "the rolling evaluator last wrote the gates blob ten minutes ago",
    Scenario.KILL_SWITCH_ENGAGED: "the kill switch is engaged (API and Valkey agree)",
    Scenario.KILL_SWITCH_MISMATCH: "the API says off while ops:kill_switch says engaged",
    Scenario.BAD_PAYLOAD: "EUR_USD's manifold is not JSON and the gates blob is a HASH",
    Scenario.VALKEY_DOWN: "the Valkey server is stopped",
}

# The checks each scenario must fail (and only these); the integration tests hold them to it.
EXPECTED_FAILURES: dict[Scenario, frozenset[str]] = {
    Scenario.HEALTHY: frozenset(),
    Scenario.STALE_MANIFOLD: frozenset({"manifold_freshness"}),
    Scenario.SIGNALS_STALLED: frozenset({"signal_freshness"}),
    Scenario.GATES_BLOB_STALE: frozenset({"gates_blob_freshness"}),
    Scenario.KILL_SWITCH_ENGAGED: frozenset({"kill_switch"}),
    Scenario.KILL_SWITCH_MISMATCH: frozenset({"kill_switch"}),
    Scenario.BAD_PAYLOAD: frozenset({"manifold_freshness", "gates_blob_freshness"}),
    Scenario.VALKEY_DOWN: frozenset(
        {
            "valkey_ping",
            "kill_switch",
            "manifold_freshness",
            "signal_freshness",
            "gates_blob_freshness",
        }
    ),
}
