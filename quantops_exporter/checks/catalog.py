"""The catalog: one row per runbook check, in runbook order. The names are label values."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, PositiveFloat

from quantops_exporter.checks.allocation import (
    check_allocation_status,
    check_allocation_weights,
    check_allocator_cadence,
    check_allocator_health,
    check_allocator_topk,
)
from quantops_exporter.checks.base import Check
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

# The runbook as published with the stack's docs; anchors are its GitHub heading slugs.
DEFAULT_RUNBOOK_URL = (
    "https://github.com/scrallex/score/blob/099b856/docs/sep-spt-impl/02_Operations_Runbook.md"
)


class Section(StrEnum):
    """The runbook's sections that hold checks, in runbook order."""

    PRE_OPEN = "Pre-Open Spin-Up"
    DAILY = "Daily Ops Snapshot"
    POST_DEPLOY = "Post-Deploy Warmup"
    TROUBLESHOOTING = "Troubleshooting"
    RECOVERY = "Recovery"

    @property
    def slug(self) -> str:
        """Its short name: the `section` label value and `check --section`'s choice."""
        return _SLUGS[self]


_SLUGS: Mapping[Section, str] = {
    Section.PRE_OPEN: "pre-open",
    Section.DAILY: "daily",
    Section.POST_DEPLOY: "post-deploy",
    Section.TROUBLESHOOTING: "troubleshooting",
    Section.RECOVERY: "recovery",
}


class Anchor(StrEnum):
    """Runbook headings as GitHub heading slugs of 02_Operations_Runbook.md."""

    PRE_OPEN = "pre-open-spin-up-510-minutes"
    DAILY = "daily-ops-snapshot-30-seconds"
    POST_DEPLOY = "post-deploy-warmup"
    TROUBLESHOOTING = "troubleshooting-no-positions-while-gates-are-green"
    RECOVERY = "recovery-margin-or-exposure-beyond-30"
    WEEKEND = "weekend--market-close"


CHECKS: tuple[Check, ...] = (
    Check(
        name="valkey_ping",
        runbook="Pre-Open Spin-Up (precondition)",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="Valkey answers PING; its round-trip latency",
        run=check_valkey_ping,
        interval=5,
        timeout=2,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="kill_switch",
        runbook="Pre-Open Spin-Up §1; Troubleshooting step 1; Weekend §2",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="/api/kill-switch and ops:kill_switch agree and match the market state",
        run=check_kill_switch,
        interval=15,
        dependencies=(Dependency.API, Dependency.VALKEY),
    ),
    Check(
        name="trading_mode",
        runbook="Pre-Open Spin-Up §1; Troubleshooting step 2",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description='/api/trading/mode is mode "live" with oanda_connected',
        run=check_trading_mode,
        interval=30,
        dependencies=(Dependency.API,),
    ),
    Check(
        name="manifold_freshness",
        runbook="Pre-Open Spin-Up §2; Post-Deploy Warmup §2; Troubleshooting step 5",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="every ws:last:manifold:{instrument} is at most FRESH_MAX_WS_AGE_SEC old",
        run=check_manifold_freshness,
        interval=10,
        market_hours_only=True,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="signal_freshness",
        runbook="Pre-Open Spin-Up §2; Troubleshooting step 5",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description=(
            "every sep:signal_index:{instrument} had an insert within FRESH_MAX_SIGNAL_AGE_SEC"
        ),
        run=check_signal_freshness,
        interval=30,
        market_hours_only=True,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="gates_blob_freshness",
        runbook="Pre-Open Spin-Up §3; Daily Ops Snapshot §4; Troubleshooting step 6",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="opt:rolling:gates_blob field ts is at most GATES_BLOB_MAX_AGE_SEC old",
        run=check_gates_blob_freshness,
        interval=30,
        market_hours_only=True,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="gates_eligible",
        runbook="Pre-Open Spin-Up §3; Daily Ops Snapshot §2",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description='at least QUANTOPS_MIN_ELIGIBLE sep_rolling_gate{eligible="1"} series',
        run=check_gates_eligible,
        interval=30,
        market_hours_only=True,
        dependencies=(Dependency.STACK_METRICS,),
    ),
    Check(
        name="gates_sanity",
        runbook="Pre-Open Spin-Up §3",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description=(
            "eligible instruments have count_1h >= ECHO_MIN_REPETITIONS and hazard <= "
            "ECHO_HAZARD_MAX; hazards in [0, 1]; no unknown instruments"
        ),
        run=check_gates_sanity,
        interval=60,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="sessions_open",
        runbook="Pre-Open Spin-Up §4",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="an intended session (QUANTOPS_EXPECTED_SESSIONS) is open",
        run=check_sessions_open,
        interval=60,
        timeout=2,
    ),
    Check(
        name="margin_utilisation",
        runbook="Pre-Open Spin-Up §4; Troubleshooting step 7; Recovery §3",
        section=Section.PRE_OPEN,
        anchor=Anchor.RECOVERY,
        description="marginUsed / (marginUsed + marginAvailable) below MARGIN_HYST_HIGH",
        run=check_margin_utilisation,
        interval=30,
        dependencies=(Dependency.API,),
    ),
    Check(
        name="allocator_topk",
        runbook="Pre-Open Spin-Up §5; Daily Ops Snapshot §3",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="the count of sep_allocator_selected == 1 is ALLOC_TOP_K",
        run=check_allocator_topk,
        interval=60,
        dependencies=(Dependency.STACK_METRICS,),
    ),
    Check(
        name="position_caps",
        runbook="Pre-Open Spin-Up §5",
        section=Section.PRE_OPEN,
        anchor=Anchor.PRE_OPEN,
        description="no position's margin exceeds min(budget/K, PM_MAX_PER_POS_PCT x budget)",
        run=check_position_caps,
        interval=60,
        dependencies=(Dependency.VALKEY, Dependency.API),
    ),
    Check(
        name="allocator_cadence",
        runbook="Daily Ops Snapshot §1",
        section=Section.DAILY,
        anchor=Anchor.DAILY,
        description="allocator-lite /status interval equals ALLOC_INTERVAL_SEC and its ts is fresh",
        run=check_allocator_cadence,
        interval=60,
        dependencies=(Dependency.ALLOCATOR,),
    ),
    Check(
        name="span_integrity",
        runbook="Daily Ops Snapshot §5",
        section=Section.DAILY,
        anchor=Anchor.DAILY,
        description="sep_span_integrity_ok is 1",
        run=check_span_integrity,
        interval=60,
        dependencies=(Dependency.STACK_METRICS,),
    ),
    Check(
        name="allocation_status",
        runbook="Daily Ops Snapshot §6",
        section=Section.DAILY,
        anchor=Anchor.DAILY,
        description=(
            "/api/risk/allocation-status total <= RISK_ALLOC_TARGET_PCT, weights only on Top-K"
        ),
        run=check_allocation_status,
        interval=60,
        dependencies=(Dependency.API, Dependency.STACK_METRICS),
    ),
    Check(
        name="candles",
        runbook="Post-Deploy Warmup §2",
        section=Section.POST_DEPLOY,
        anchor=Anchor.POST_DEPLOY,
        description="/api/candles returns QUANTOPS_CANDLES_LIMIT M1 candles, the newest fresh",
        run=check_candles,
        interval=60,
        timeout=10,
        dependencies=(Dependency.API,),
    ),
    Check(
        name="allocator_health",
        runbook="Post-Deploy Warmup §3",
        section=Section.POST_DEPLOY,
        anchor=Anchor.POST_DEPLOY,
        description="allocator-lite /status answers and parses; backend /health answers",
        run=check_allocator_health,
        interval=30,
        dependencies=(Dependency.ALLOCATOR, Dependency.API),
    ),
    Check(
        name="alloc_budget",
        runbook="Troubleshooting step 3",
        section=Section.TROUBLESHOOTING,
        anchor=Anchor.TROUBLESHOOTING,
        description="HASH risk:alloc_budget exists with numeric fields",
        run=check_alloc_budget,
        interval=60,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="allocation_weights",
        runbook="Troubleshooting step 4",
        section=Section.TROUBLESHOOTING,
        anchor=Anchor.TROUBLESHOOTING,
        description="risk:allocation_weights exists, parses and is non-empty; its last change",
        run=check_allocation_weights,
        interval=60,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="spread_guard",
        runbook="Troubleshooting step 7; Recovery §4",
        section=Section.TROUBLESHOOTING,
        anchor=Anchor.TROUBLESHOOTING,
        description="spreads from /api/oanda/pricing within MAX_SPREAD_BPS",
        run=check_spread_guard,
        interval=30,
        market_hours_only=True,
        dependencies=(Dependency.API,),
    ),
    Check(
        name="no_positions_diagnosis",
        runbook="Troubleshooting: No Positions While Gates Are Green; Pre-Open Spin-Up §6",
        section=Section.TROUBLESHOOTING,
        anchor=Anchor.TROUBLESHOOTING,
        description=(
            "flat for QUANTOPS_FLAT_GRACE_SECONDS while gates are green: the first failing step"
        ),
        run=check_no_positions,
        interval=60,
        timeout=20,
        market_hours_only=True,
        dependencies=(Dependency.API, Dependency.STACK_METRICS, Dependency.VALKEY),
    ),
    Check(
        name="exposure_within_cap",
        runbook="Recovery: Margin or Exposure Beyond 30%",
        section=Section.RECOVERY,
        anchor=Anchor.RECOVERY,
        description="margin utilisation and total allocation at most 0.30",
        run=check_exposure_within_cap,
        interval=30,
        dependencies=(Dependency.API,),
    ),
)

T = TypeVar("T")
CHECK_NAMES: frozenset[str] = frozenset(check.name for check in CHECKS)


class CheckOverride(BaseModel):
    """QUANTOPS_CHECKS__<check>__{INTERVAL_SECONDS,TIMEOUT_SECONDS,ENABLED}; unset keeps the
    catalog's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_seconds: PositiveFloat | None = None
    timeout_seconds: PositiveFloat | None = None
    enabled: bool | None = None


@functools.lru_cache(maxsize=256)  # /metrics judges every section at each render: parse once
def sections_of(check: Check) -> tuple[Section, ...]:
    """Every runbook section whose steps include `check`, read from its step reference (the
    runbook's step table), its own section first."""
    found = [check.section] if check.section in set(Section) else []
    for step in check.runbook.split(";"):
        for section in Section:
            if step.strip().startswith(section.value) and section not in found:
                found.append(section)
    return tuple(Section(s) for s in found)


def section_checks(checks: Iterable[Check], section: Section) -> tuple[Check, ...]:
    """The checks whose steps include one of `section`'s (what `check --section` runs and
    `runbook_section_ok` judges), in catalog order."""
    return tuple(check for check in checks if section in sections_of(check))


def build_catalog(overrides: Mapping[str, CheckOverride]) -> tuple[Check, ...]:
    """The catalog with per-check overrides applied (names are validated by the settings)."""
    rows = []
    for check in CHECKS:
        override = overrides.get(check.name, CheckOverride())
        rows.append(
            dataclasses.replace(
                check,
                interval=_given(override.interval_seconds, check.interval),
                timeout=_given(override.timeout_seconds, check.timeout),
                enabled=_given(override.enabled, check.enabled),
            )
        )
    return tuple(rows)


def _given(value: T | None, default: T) -> T:
    return default if value is None else value
