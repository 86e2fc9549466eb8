"""The catalog: one row per runbook check, in runbook order. The names are label values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from quantops_exporter.checks.allocation import (
    check_allocation_status,
    check_allocation_weights,
    check_allocator_cadence,
    check_allocator_health,
    check_allocator_topk,
)
from quantops_exporter.checks.base import Check, Run
from quantops_exporter.checks.connectivity import check_valkey_ping
from quantops_exporter.checks.diagnosis import check_no_positions
from quantops_exporter.checks.freshness import (
    check_gates_blob_freshness,
    check_manifold_freshness,
    check_signal_freshness,
)
from quantops_exporter.checks.gates import (
    check_gates_eligible,
    check_gates_sanity,
    check_span_integrity,
)
from quantops_exporter.checks.kill_switch import check_kill_switch
from quantops_exporter.checks.pricing import check_spread_guard
from quantops_exporter.checks.risk import (
    check_alloc_budget,
    check_exposure_within_cap,
    check_margin_utilisation,
    check_position_caps,
)
from quantops_exporter.checks.sessions import check_sessions_open
from quantops_exporter.checks.trading import check_trading_mode
from quantops_exporter.checks.warmup import check_candles
from quantops_exporter.sources.health import Dependency

PRE_OPEN = "Pre-Open Spin-Up"
DAILY = "Daily Ops Snapshot"
POST_DEPLOY = "Post-Deploy Warmup"
TROUBLESHOOTING = "Troubleshooting"
RECOVERY = "Recovery"
SECTIONS = (PRE_OPEN, DAILY, POST_DEPLOY, TROUBLESHOOTING, RECOVERY)

V, A, M, AL = Dependency.VALKEY, Dependency.API, Dependency.STACK_METRICS, Dependency.ALLOCATOR


def _row(
    name: str,
    runbook: str,
    section: str,
    description: str,
    run: Run,
    *,
    interval: float,
    timeout: float = 5.0,
    market_hours_only: bool = False,
    dependencies: tuple[Dependency, ...] = (),
) -> Check:
    return Check(
        name=name,
        runbook=runbook,
        section=section,
        description=description,
        interval=interval,
        timeout=timeout,
        market_hours_only=market_hours_only,
        run=run,
        dependencies=dependencies,
    )


CHECKS: tuple[Check, ...] = (
    _row(
        "valkey_ping",
        "Pre-Open Spin-Up (precondition)",
        PRE_OPEN,
        "Valkey answers PING; its round-trip latency",
        check_valkey_ping,
        interval=5,
        timeout=2,
        dependencies=(V,),
    ),
    _row(
        "kill_switch",
        "Pre-Open Spin-Up §1; Weekend §2",
        PRE_OPEN,
        "/api/kill-switch and ops:kill_switch agree and match the market state",
        check_kill_switch,
        interval=15,
        dependencies=(A, V),
    ),
    _row(
        "trading_mode",
        "Pre-Open Spin-Up §1; Troubleshooting step 2",
        PRE_OPEN,
        '/api/trading/mode is mode "live" with oanda_connected',
        check_trading_mode,
        interval=30,
        dependencies=(A,),
    ),
    _row(
        "manifold_freshness",
        "Pre-Open Spin-Up §2",
        PRE_OPEN,
        "every ws:last:manifold:{instrument} is at most FRESH_MAX_WS_AGE_SEC old",
        check_manifold_freshness,
        interval=10,
        market_hours_only=True,
        dependencies=(V,),
    ),
    _row(
        "signal_freshness",
        "Pre-Open Spin-Up §2",
        PRE_OPEN,
        "every sep:signal_index:{instrument} had an insert within FRESH_MAX_SIGNAL_AGE_SEC",
        check_signal_freshness,
        interval=30,
        market_hours_only=True,
        dependencies=(V,),
    ),
    _row(
        "gates_blob_freshness",
        "Pre-Open Spin-Up §3; Daily Ops Snapshot §4",
        PRE_OPEN,
        "opt:rolling:gates_blob field ts is at most GATES_BLOB_MAX_AGE_SEC old",
        check_gates_blob_freshness,
        interval=30,
        market_hours_only=True,
        dependencies=(V,),
    ),
    _row(
        "gates_eligible",
        "Pre-Open Spin-Up §3; Daily Ops Snapshot §2",
        PRE_OPEN,
        'at least QUANTOPS_MIN_ELIGIBLE sep_rolling_gate{eligible="1"} series',
        check_gates_eligible,
        interval=30,
        market_hours_only=True,
        dependencies=(M,),
    ),
    _row(
        "gates_sanity",
        "Pre-Open Spin-Up §3",
        PRE_OPEN,
        "eligible instruments have count_1h >= ECHO_MIN_REPETITIONS and hazard <= "
        "ECHO_HAZARD_MAX; hazards in [0, 1]; no unknown instruments",
        check_gates_sanity,
        interval=60,
        dependencies=(V,),
    ),
    _row(
        "sessions_open",
        "Pre-Open Spin-Up §4",
        PRE_OPEN,
        "an intended session (QUANTOPS_EXPECTED_SESSIONS) is open",
        check_sessions_open,
        interval=60,
        timeout=2,
    ),
    _row(
        "margin_utilisation",
        "Pre-Open Spin-Up §4; Recovery",
        PRE_OPEN,
        "marginUsed / (marginUsed + marginAvailable) below MARGIN_HYST_HIGH",
        check_margin_utilisation,
        interval=30,
        dependencies=(A,),
    ),
    _row(
        "allocator_topk",
        "Pre-Open Spin-Up §5; Daily Ops Snapshot §3",
        PRE_OPEN,
        "the count of sep_allocator_selected == 1 is ALLOC_TOP_K",
        check_allocator_topk,
        interval=60,
        dependencies=(M,),
    ),
    _row(
        "position_caps",
        "Pre-Open Spin-Up §5",
        PRE_OPEN,
        "no position's margin exceeds min(budget/K, PM_MAX_PER_POS_PCT x budget)",
        check_position_caps,
        interval=60,
        dependencies=(V, A),
    ),
    _row(
        "allocator_cadence",
        "Daily Ops Snapshot §1",
        DAILY,
        "allocator-lite /status interval equals ALLOC_INTERVAL_SEC and its ts is fresh",
        check_allocator_cadence,
        interval=60,
        dependencies=(AL,),
    ),
    _row(
        "span_integrity",
        "Daily Ops Snapshot §5",
        DAILY,
        "sep_span_integrity_ok is 1",
        check_span_integrity,
        interval=60,
        dependencies=(M,),
    ),
    _row(
        "allocation_status",
        "Daily Ops Snapshot §6",
        DAILY,
        "/api/risk/allocation-status total <= RISK_ALLOC_TARGET_PCT, weights only on Top-K",
        check_allocation_status,
        interval=60,
        dependencies=(A, M),
    ),
    _row(
        "candles",
        "Post-Deploy Warmup §2",
        POST_DEPLOY,
        "/api/candles returns QUANTOPS_CANDLES_LIMIT M1 candles, the newest fresh",
        check_candles,
        interval=60,
        timeout=10,
        dependencies=(A,),
    ),
    _row(
        "allocator_health",
        "Post-Deploy Warmup §3",
        POST_DEPLOY,
        "allocator-lite /status answers and parses; backend /health answers",
        check_allocator_health,
        interval=30,
        dependencies=(AL, A),
    ),
    _row(
        "alloc_budget",
        "Troubleshooting step 3",
        TROUBLESHOOTING,
        "HASH risk:alloc_budget exists with numeric fields",
        check_alloc_budget,
        interval=60,
        dependencies=(V,),
    ),
    _row(
        "allocation_weights",
        "Troubleshooting step 4",
        TROUBLESHOOTING,
        "risk:allocation_weights exists, parses and is non-empty; its last change",
        check_allocation_weights,
        interval=60,
        dependencies=(V,),
    ),
    _row(
        "spread_guard",
        "Troubleshooting step 7",
        TROUBLESHOOTING,
        "spreads from /api/oanda/pricing within MAX_SPREAD_BPS",
        check_spread_guard,
        interval=30,
        market_hours_only=True,
        dependencies=(A,),
    ),
    _row(
        "no_positions_diagnosis",
        "Troubleshooting: No Positions While Gates Are Green",
        TROUBLESHOOTING,
        "flat for QUANTOPS_FLAT_GRACE_SECONDS while gates are green: the first failing step",
        check_no_positions,
        interval=60,
        timeout=20,
        market_hours_only=True,
        dependencies=(A, M, V),
    ),
    _row(
        "exposure_within_cap",
        "Recovery: Margin or Exposure Beyond 30%",
        RECOVERY,
        "margin utilisation and total allocation at most 0.30",
        check_exposure_within_cap,
        interval=30,
        dependencies=(A,),
    ),
)

CHECK_NAMES: frozenset[str] = frozenset(check.name for check in CHECKS)


@dataclass(frozen=True, slots=True)
class Override:
    """Per-check settings from QUANTOPS_CHECKS__<name>__*; None keeps the catalog default."""

    interval: float | None = None
    timeout: float | None = None
    enabled: bool | None = None


def build_catalog(overrides: Mapping[str, Override] | None = None) -> tuple[Check, ...]:
    """The catalog with per-check overrides applied (names are validated by the settings)."""
    overrides = overrides or {}
    rows = []
    for check in CHECKS:
        override = overrides.get(check.name, Override())
        rows.append(
            dataclasses.replace(
                check,
                interval=override.interval if override.interval is not None else check.interval,
                timeout=override.timeout if override.timeout is not None else check.timeout,
                enabled=override.enabled if override.enabled is not None else check.enabled,
            )
        )
    return tuple(rows)
