"""The simulated stack's state at a moment: a pure function of scenario and time.

Valkey contents (state.py) and every HTTP answer (api.py) are rendered from one World, so the
simulated stack is consistent with itself the way the real one is: gates feed the allocator's
Top-K, weights sit on the Top-K, positions use margin within the caps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.week import WeekState

TOP_K = 3
BUDGET = {
    "balance": 100_000.0,
    "margin_available": 90_000.0,
    "target_pct": 0.30,
    "budget": 27_000.0,
}
# Scenarios where, as in the runbook's troubleshooting story, nothing is open.
FLAT = frozenset(
    {
        Scenario.KILL_SWITCH_ENGAGED,
        Scenario.MODE_NOT_LIVE,
        Scenario.OANDA_DISCONNECTED,
        Scenario.BUDGET_MISSING,
        Scenario.WEIGHTS_MISSING,
        Scenario.SPREAD_WIDE,
        Scenario.FLAT_WHILE_GREEN,
    }
)


@dataclass(frozen=True, slots=True)
class World:
    """Everything the simulated stack would report right now."""

    instruments: tuple[str, ...]
    eligible: tuple[str, ...]
    hazard_override: dict[str, float] = field(default_factory=dict)
    selected: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)
    budget: dict[str, float] | None = None
    positions: tuple[tuple[str, float], ...] = ()
    margin_used: float = 0.0
    margin_available: float = 0.0
    mode: str = "live"
    oanda_connected: bool = True
    span_ok: int = 1
    allocator_interval: int = 60
    allocator_ts: float = 0.0
    candles: int = 120
    newest_candle: float = 0.0
    spreads_bps: dict[str, float] = field(default_factory=dict)
    weights_published: bool = True


def build_world(
    scenario: Scenario,
    now: float,
    instruments: tuple[str, ...],
    *,
    normalized_weights: bool = False,
    week: WeekState | None = None,
) -> World:
    """The world under `scenario` at `now`; `week` (the `week` schedule) flattens positions,
    holds the gates back while they re-qualify and freezes the candles while closed."""
    eligible = instruments[: 2 if scenario is Scenario.TOO_FEW_ELIGIBLE else 4]
    if week is not None and not week.requalified:
        eligible = ()
    selected = instruments[: TOP_K + 1 if scenario is Scenario.TOPK_MISMATCH else TOP_K]
    shares = [0.10, 0.10, 0.08]
    if scenario is Scenario.ALLOCATION_OVERCAP:
        shares = [0.14, 0.12, 0.10]
    weights = dict(zip(instruments[:TOP_K], shares, strict=False))
    if scenario is Scenario.ALLOCATION_OFF_TOPK:
        weights[instruments[-1]] = 0.02
    if normalized_weights:
        total = sum(weights.values())
        weights = {k: round(v / total, 4) for k, v in weights.items()}
    positions: tuple[tuple[str, float], ...] = tuple(
        zip(instruments[:TOP_K], (2000.0, 1800.0, 1500.0), strict=False)
    )
    if scenario is Scenario.POSITION_OVERCAP:
        positions = ((instruments[0], 5000.0), *positions[1:])
    if scenario in FLAT or (week is not None and week.flat):
        positions = ()
    used = sum(m for _i, m in positions)
    available = 100_000.0 - used
    if scenario is Scenario.MARGIN_HIGH:
        used, available = 45_000.0, 55_000.0
    minute = math.floor(now / 60) * 60
    newest_candle: float = minute - 60  # the last complete M1 candle
    if week is not None:
        newest_candle = week.newest_candle
    return World(
        instruments=instruments,
        eligible=eligible,
        hazard_override=(
            {eligible[0]: 1.3} if scenario is Scenario.HAZARD_INSANE and eligible else {}
        ),
        selected=selected,
        weights={} if scenario is Scenario.WEIGHTS_MISSING else weights,
        weights_published=scenario is not Scenario.WEIGHTS_MISSING,
        budget=None if scenario is Scenario.BUDGET_MISSING else dict(BUDGET),
        positions=positions,
        margin_used=used,
        margin_available=available,
        mode="paper" if scenario is Scenario.MODE_NOT_LIVE else "live",
        oanda_connected=scenario is not Scenario.OANDA_DISCONNECTED,
        span_ok=0 if scenario is Scenario.SPAN_INTEGRITY_BROKEN else 1,
        allocator_interval=600 if scenario is Scenario.ALLOCATOR_CADENCE_WRONG else 60,
        allocator_ts=minute,
        candles=80 if scenario is Scenario.CANDLES_SHORT else 120,
        newest_candle=newest_candle,
        spreads_bps={
            inst: 12.0 if scenario is Scenario.SPREAD_WIDE and inst == "EUR_USD" else 0.8
            for inst in instruments
        },
    )
