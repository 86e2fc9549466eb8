"""The board: the latest outcome whole, the history slim (what its readers read of past runs)."""

from __future__ import annotations

import dataclasses
import gc

from quantops_exporter.board import Board
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Freshness, Measure, Reading, Reason, Source, Status
from tests.factories import NOW, outcome

INSTRUMENTS = tuple(f"I{index:04d}" for index in range(1000))


def test_the_history_keeps_status_reason_summary_and_times_not_the_rows() -> None:
    """Twenty runs of a thousand rows each: the latest outcome keeps its rows, past runs keep
    status, reason, summary, start and duration (the JSON API and the status page read no
    more), so a full garbage collection has a few thousand objects to walk, not 80,000."""
    board = Board(CHECKS)
    gc.collect()
    before = len(gc.get_objects())
    for run in range(20):
        fresh = tuple(Freshness(Source.WS_MANIFOLD, i, NOW - run) for i in INSTRUMENTS)
        readings = tuple(Reading(Measure.SPREAD_BPS, 1.0, (i,)) for i in INSTRUMENTS)
        board.record(
            outcome(
                "manifold_freshness",
                Status.FAIL if run % 2 else Status.OK,
                Reason.STALE if run % 2 else Reason.NONE,
                started_at=NOW + run,
                freshness=fresh,
                readings=readings,
            )
        )
    state = board.states["manifold_freshness"]
    assert state.latest is not None and len(state.latest.freshness) == 1000
    assert len(state.history) == 20
    assert [past.status for past in state.history][-2:] == [Status.OK, Status.FAIL]
    for run, past in enumerate(state.history):
        assert past.started_at == NOW + run
        assert past.reason is (Reason.STALE if run % 2 else Reason.NONE)
        assert past.summary == state.latest.summary
    assert all(not past.freshness and not past.readings for past in state.history)
    gc.collect()
    assert len(gc.get_objects()) - before < 10_000


def test_a_run_that_ends_after_its_check_was_removed_or_disabled_is_dropped() -> None:
    """A reload removed or disabled the check while its run was in flight: the run's late
    outcome is not recorded (its check exports enabled 0, not a fresh error beside it)."""
    kept, disabled, removed = CHECKS[0], CHECKS[1], CHECKS[2]
    board = Board(CHECKS)
    for check in (kept, disabled, removed):
        board.record(outcome(check.name, Status.OK, summary="before the reload"))
    board.reconfigure(
        [c for c in CHECKS if c is not removed and c is not disabled]
        + [dataclasses.replace(disabled, enabled=False)]
    )
    for check in (kept, disabled, removed):
        board.record(outcome(check.name, Status.ERROR, Reason.TIMEOUT, "after the reload"))
    assert board.states[kept.name].latest.summary == "after the reload"  # type: ignore[union-attr]
    assert board.states[disabled.name].latest.summary == "before the reload"  # type: ignore[union-attr]
    assert removed.name not in board.states
