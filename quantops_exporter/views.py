"""Outcomes and board rows as the JSON the API and `check --json` share."""

from __future__ import annotations

from typing import Any

from quantops_exporter.board import CheckState
from quantops_exporter.checks.base import Outcome


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """An outcome as JSON."""
    return {
        "check": outcome.check,
        "status": outcome.status.value,
        "reason": outcome.reason.value,
        "summary": outcome.summary,
        "expected": outcome.expected,
        "started_at": outcome.started_at,
        "duration_seconds": round(outcome.duration, 6),
        "observations": dict(outcome.observations),
    }


def state_json(state: CheckState, *, history: bool = True) -> dict[str, Any]:
    """One check's row on the board, with its recent outcomes."""
    check = state.check
    row: dict[str, Any] = {
        "check": check.name,
        "runbook": check.runbook,
        "section": check.section,
        "description": check.description,
        "enabled": check.enabled,
        "interval_seconds": check.interval,
        "timeout_seconds": check.timeout,
        "status": None,
        "reason": None,
        "summary": "not run yet",
        "last_success_at": state.last_success_at,
    }
    if state.latest is not None:
        row |= outcome_json(state.latest)
    if history:
        row["history"] = [
            {
                "status": o.status.value,
                "reason": o.reason.value,
                "started_at": o.started_at,
                "duration_seconds": round(o.duration, 6),
            }
            for o in state.history
        ]
    return row
