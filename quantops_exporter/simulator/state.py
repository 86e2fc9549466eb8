"""What the simulated stack's Valkey holds at a moment: a pure function of scenario and time.

Writers run on cadences (ws-hydrator ~10 s, signals ~30 s, rolling evaluator 60 s), so each
timestamp is the start of the writer's current cycle, as the real keys would show. Under the
`week` schedule (week.py) a `WeekState` says when each writer last wrote instead: frozen while
the market is closed, resuming after the open; manifolds then carry their EX and expire.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.week import WeekState
from quantops_exporter.simulator.world import World, build_world

MANIFOLD_CADENCE = 10.0
SIGNAL_CADENCE = 30.0
EVALUATOR_CADENCE = 60.0
SIGNAL_HISTORY = 5
STALE_BY = 600.0  # how old a stopped writer's last update is
STALLED_SIGNALS_BY = 900.0
BROKEN_INSTRUMENT = "EUR_USD"


class TimeUnit(StrEnum):
    """How the simulator spells a timestamp (the contract's variants)."""

    S = "s"
    MS = "ms"
    US = "us"
    NS = "ns"
    ISO = "iso"


_PER_SECOND = {
    TimeUnit.S: 1,
    TimeUnit.MS: 1_000,
    TimeUnit.US: 1_000_000,
    TimeUnit.NS: 1_000_000_000,
}


def spell(moment: float, unit: TimeUnit) -> int | str:
    """Epoch seconds spelt in `unit`."""
    if unit is TimeUnit.ISO:
        return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
    return int(moment * _PER_SECOND[unit])


@dataclass(frozen=True, slots=True)
class Variant:
    """Which of the contract's listed shapes the simulated stack uses."""

    manifold_ts_field: str = "ts_ms"
    manifold_ts_unit: TimeUnit = TimeUnit.MS
    signal_score_unit: TimeUnit = TimeUnit.MS
    gates_blob_ts_unit: TimeUnit = TimeUnit.MS
    gates_blob_shape: str = "echo"  # echo (current) | hysteresis (older)
    weights_scale: str = "budget"  # budget (fractions of the budget) | normalized (sum 1)
    weights_wrapped: bool = False  # {"weights": {...}} rather than a flat map
    trading_mode_shape: str = "runbook"  # runbook {mode, oanda_connected} | openapi
    account_wrapped: bool = True  # {"account": {...}} as OANDA's summary
    pricing_shape: str = "oanda"  # oanda (list of bids/asks) | map ({INST: {bid, ask}})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Desired key contents: STRING values, ZSET members and HASH fields by key.

    A STRING key in `expiring` is written as its writer does, with a TTL (milliseconds left):
    only when its value changes (a new cycle), never refreshed, so a frozen writer's key
    expires in Valkey and stays gone.
    """

    strings: dict[str, str] = field(default_factory=dict)
    zsets: dict[str, dict[str, float]] = field(default_factory=dict)
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    expiring: dict[str, int] = field(default_factory=dict)


def _cycle_start(now: float, cadence: float) -> float:
    return math.floor(now / cadence) * cadence


def snapshot(
    scenario: Scenario,
    now: float,
    instruments: tuple[str, ...],
    *,
    market_open: bool,
    variant: Variant | None = None,
    week: WeekState | None = None,
) -> Snapshot:
    """What Valkey should hold at `now` under `scenario` (and `week`, the `week` schedule)."""
    variant = variant or Variant()
    snap = Snapshot()
    for index, inst in enumerate(instruments):
        updated = _cycle_start(now, MANIFOLD_CADENCE) if week is None else week.manifold_at
        broken = scenario is Scenario.STALE_MANIFOLD and inst == BROKEN_INSTRUMENT
        if broken:
            updated = min(updated, _cycle_start(now - STALE_BY, MANIFOLD_CADENCE))
        manifold = {
            "instrument": inst,
            variant.manifold_ts_field: spell(updated, variant.manifold_ts_unit),
            "metrics": {
                "coherence": 0.61 + index / 100,
                "stability": 0.55,
                "entropy": 0.42,
                "rupture": 0.18,
            },
            "coeffs": {"sigma_eff": 0.012, "lambda": 0.21},
        }
        text = json.dumps(manifold)
        if scenario is Scenario.BAD_PAYLOAD and inst == BROKEN_INSTRUMENT:
            text = text[: len(text) // 2]  # a truncated write
        key = f"ws:last:manifold:{inst}"
        if week is None or broken:
            snap.strings[key] = text
        elif week.manifold_expires_at > now:  # else Valkey has expired it: nothing to write
            snap.strings[key] = text
            snap.expiring[key] = max(1, math.ceil((week.manifold_expires_at - now) * 1000))

        newest = _cycle_start(now, SIGNAL_CADENCE) if week is None else week.signals_at
        if scenario is Scenario.SIGNALS_STALLED:
            newest = min(newest, _cycle_start(now - STALLED_SIGNALS_BY, SIGNAL_CADENCE))
        snap.zsets[f"sep:signal_index:{inst}"] = {
            f"sep:signal:{inst}:{spell(moment, TimeUnit.NS)}": float(
                spell(moment, variant.signal_score_unit)
            )
            for moment in (newest - k * SIGNAL_CADENCE for k in range(SIGNAL_HISTORY))
        }

    blob_ts = _cycle_start(now, EVALUATOR_CADENCE) if week is None else week.blob_at
    if scenario is Scenario.GATES_BLOB_STALE:
        blob_ts = min(blob_ts, _cycle_start(now - STALE_BY, EVALUATOR_CADENCE))
    world = build_world(
        scenario,
        now,
        instruments,
        normalized_weights=variant.weights_scale == "normalized",
        week=week,
    )
    blob = gates_blob(world, spell(blob_ts, variant.gates_blob_ts_unit), variant)
    if scenario is Scenario.BAD_PAYLOAD:
        snap.hashes["opt:rolling:gates_blob"] = {"ts": str(blob["ts"])}
    else:
        snap.strings["opt:rolling:gates_blob"] = json.dumps(blob)

    engaged = kill_switch_engaged(scenario, market_open)
    if week is not None:
        engaged = week.kill_switch or kill_switch_engaged(scenario, True)
    snap.strings["ops:kill_switch"] = "1" if engaged else "0"
    if world.budget is not None:
        snap.hashes["risk:alloc_budget"] = {k: f"{v:g}" for k, v in world.budget.items()}
    else:
        snap.absent.add("risk:alloc_budget")
    if world.weights_published:
        document: object = {"weights": world.weights} if variant.weights_wrapped else world.weights
        snap.strings["risk:allocation_weights"] = json.dumps(document)
    else:
        snap.absent.add("risk:allocation_weights")
    return snap


def gates_blob(world: World, ts: int | str, variant: Variant) -> dict[str, object]:
    """The rolling evaluator's snapshot: the echo-gate shape or the older hysteresis one."""
    instruments = world.instruments
    eligible = {inst: int(inst in world.eligible) for inst in instruments}
    blob: dict[str, object] = {
        "ts": ts,
        "gates": eligible,
        "cooldowns": dict.fromkeys(instruments, 0),
    }
    if variant.gates_blob_shape == "hysteresis":
        blob["bufs"] = {inst: 0.15 if inst == "USD_CHF" else 0.10 for inst in instruments}
        return blob
    blob["bufs"] = dict.fromkeys(instruments, 0)
    blob["repetition"] = {
        inst: {"count_1h": 4 + i if eligible[inst] else 1, "first_seen_ms": 1758058120000}
        for i, inst in enumerate(instruments)
    }
    blob["hazard"] = {
        inst: world.hazard_override.get(inst, round(0.12 + i * 0.05, 2))
        for i, inst in enumerate(instruments)
    }
    return blob


def kill_switch_engaged(scenario: Scenario, market_open: bool) -> bool:
    """The runbook's practice: off while the market is open, on while it is closed."""
    if scenario in (Scenario.KILL_SWITCH_ENGAGED, Scenario.KILL_SWITCH_MISMATCH):
        return True
    return not market_open
