"""The catalog: one row per runbook check, in runbook order. The names are label values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.connectivity import check_valkey_ping
from quantops_exporter.checks.freshness import (
    check_gates_blob_freshness,
    check_manifold_freshness,
    check_signal_freshness,
)
from quantops_exporter.checks.kill_switch import check_kill_switch
from quantops_exporter.sources.health import Dependency

PRE_OPEN = "Pre-Open Spin-Up"
DAILY = "Daily Ops Snapshot"
CONNECTIVITY = "Connectivity"

CHECKS: tuple[Check, ...] = (
    Check(
        name="valkey_ping",
        runbook="Pre-Open Spin-Up (precondition)",
        section=CONNECTIVITY,
        description="Valkey answers PING; its round-trip latency",
        interval=5.0,
        timeout=2.0,
        market_hours_only=False,
        run=check_valkey_ping,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="kill_switch",
        runbook="Pre-Open Spin-Up §1; Weekend §2",
        section=PRE_OPEN,
        description="/api/kill-switch and ops:kill_switch agree, and match the market state",
        interval=15.0,
        timeout=5.0,
        market_hours_only=False,
        run=check_kill_switch,
        dependencies=(Dependency.API, Dependency.VALKEY),
    ),
    Check(
        name="manifold_freshness",
        runbook="Pre-Open Spin-Up §2",
        section=PRE_OPEN,
        description="every ws:last:manifold:{instrument} is at most FRESH_MAX_WS_AGE_SEC old",
        interval=10.0,
        timeout=5.0,
        market_hours_only=True,
        run=check_manifold_freshness,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="signal_freshness",
        runbook="Pre-Open Spin-Up §2",
        section=PRE_OPEN,
        description="newest sep:signal_index:{instrument} member is at most "
        "FRESH_MAX_SIGNAL_AGE_SEC old",
        interval=30.0,
        timeout=5.0,
        market_hours_only=True,
        run=check_signal_freshness,
        dependencies=(Dependency.VALKEY,),
    ),
    Check(
        name="gates_blob_freshness",
        runbook="Pre-Open Spin-Up §3; Daily Ops Snapshot §4",
        section=PRE_OPEN,
        description="opt:rolling:gates_blob field ts is at most GATES_BLOB_MAX_AGE_SEC old",
        interval=30.0,
        timeout=5.0,
        market_hours_only=True,
        run=check_gates_blob_freshness,
        dependencies=(Dependency.VALKEY,),
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
