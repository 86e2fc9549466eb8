"""Metrics rendered from the board: series from start-up, state sets, freshness, accumulators."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from quantops_exporter.board import Board
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Freshness, Measure, Reading, Reason, Source, Status
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import Dependency, DependencyHealth
from tests.factories import outcome

NOW = 1_800_000_000.0


def setup() -> tuple[Board, DependencyHealth, CollectorRegistry]:
    """A board over the real catalog with its registry."""
    board = Board(CHECKS)
    health = DependencyHealth()
    registry, _ = build_registry(board, health, CHECKS)
    return board, health, registry


def test_every_check_has_series_before_its_first_run() -> None:
    """From start-up every configured check exports ok=0 and expected=0 (nothing can page)."""
    _board, _health, registry = setup()
    for check in CHECKS:
        assert registry.get_sample_value("runbook_check_ok", {"check": check.name}) == 0
        assert registry.get_sample_value("runbook_check_expected", {"check": check.name}) == 0
        assert (
            registry.get_sample_value(
                "runbook_check_runs_total", {"check": check.name, "status": "fail"}
            )
            == 0
        )


def test_outcome_sets_ok_status_and_reason_state_sets() -> None:
    """A failure shows ok=0, exactly one status and one reason set to 1."""
    board, _health, registry = setup()
    board.record(outcome("manifold_freshness", Status.FAIL, Reason.STALE))
    labels = {"check": "manifold_freshness"}
    assert registry.get_sample_value("runbook_check_ok", labels) == 0
    assert registry.get_sample_value("runbook_check_expected", labels) == 1
    statuses = {
        s: registry.get_sample_value("runbook_check_status", labels | {"status": s}) for s in Status
    }
    assert statuses == {Status.OK: 0, Status.FAIL: 1, Status.ERROR: 0, Status.SKIPPED: 0}
    reasons = {
        r: registry.get_sample_value("runbook_check_failure_reason", labels | {"reason": r})
        for r in Reason
    }
    assert [r for r, v in reasons.items() if v == 1] == [Reason.STALE]
    assert registry.get_sample_value("runbook_check_last_run_timestamp_seconds", labels) == NOW
    assert registry.get_sample_value("runbook_check_last_success_timestamp_seconds", labels) is None


def test_skipped_counts_as_ok_but_not_expected() -> None:
    """A market-closed skip reads ok=1, expected=0, so `ok == 0 and expected == 1` is silent."""
    board, _health, registry = setup()
    board.record(outcome("signal_freshness", Status.SKIPPED, Reason.MARKET_CLOSED, expected=False))
    labels = {"check": "signal_freshness"}
    assert registry.get_sample_value("runbook_check_ok", labels) == 1
    assert registry.get_sample_value("runbook_check_expected", labels) == 0


def test_last_success_survives_a_later_failure() -> None:
    """The last-success timestamp keeps the time of the last ok run."""
    board, _health, registry = setup()
    board.record(outcome("valkey_ping", Status.OK))
    board.record(
        outcome("valkey_ping", Status.ERROR, Reason.UNREACHABLE, "down", started_at=NOW + 5)
    )
    labels = {"check": "valkey_ping"}
    assert registry.get_sample_value("runbook_check_last_success_timestamp_seconds", labels) == NOW
    assert registry.get_sample_value("runbook_check_last_run_timestamp_seconds", labels) == NOW + 5
    assert registry.get_sample_value("runbook_check_runs_total", labels | {"status": "error"}) == 1


def test_freshness_is_exported_as_timestamps_and_observed_once_per_run() -> None:
    """Each run adds one age observation per instrument; the gauge holds the update time."""
    board, _health, registry = setup()
    fresh = (
        Freshness(Source.WS_MANIFOLD, "EUR_USD", NOW - 12),
        Freshness(Source.WS_MANIFOLD, "USD_JPY", NOW - 700),
        Freshness(Source.WS_MANIFOLD, "USD_CHF", None),
    )
    board.record(outcome("manifold_freshness", Status.FAIL, Reason.STALE, freshness=fresh))
    assert (
        registry.get_sample_value(
            "runbook_freshness_last_update_timestamp_seconds",
            {"source": "ws_manifold", "instrument": "EUR_USD"},
        )
        == NOW - 12
    )
    assert (
        registry.get_sample_value(
            "runbook_freshness_last_update_timestamp_seconds",
            {"source": "ws_manifold", "instrument": "USD_CHF"},
        )
        is None
    )
    count = {"source": "ws_manifold"}
    assert registry.get_sample_value("runbook_freshness_age_seconds_count", count) == 2
    assert registry.get_sample_value("runbook_freshness_age_seconds_sum", count) == 712
    assert (
        registry.get_sample_value("runbook_freshness_age_seconds_bucket", count | {"le": "30.0"})
        == 1
    )
    # Scraping does not observe anything more.
    for _ in range(3):
        list(registry.collect())
    assert registry.get_sample_value("runbook_freshness_age_seconds_count", count) == 2


def test_domain_readings_and_dependencies() -> None:
    """Readings become their gauges; dependency health is exported as it was last seen."""
    board, health, registry = setup()
    board.record(
        outcome(
            "kill_switch",
            Status.OK,
            readings=(
                Reading(Measure.KILL_SWITCH_ENGAGED, 0.0, ("api",)),
                Reading(Measure.KILL_SWITCH_ENGAGED, 1.0, ("valkey",)),
            ),
        )
    )
    health.mark(Dependency.VALKEY, False)
    health.mark(Dependency.API, True)
    assert registry.get_sample_value("runbook_kill_switch_engaged", {"source": "valkey"}) == 1
    assert registry.get_sample_value("runbook_dependency_up", {"dependency": "valkey"}) == 0
    assert registry.get_sample_value("runbook_dependency_up", {"dependency": "api"}) == 1
    assert registry.get_sample_value("runbook_dependency_up", {"dependency": "allocator"}) is None


def test_build_info() -> None:
    """The build info carries the version and the source revision with its date."""
    from quantops_exporter.build import build

    _board, _health, registry = setup()
    samples = [
        s for m in registry.collect() for s in m.samples if s.name == "quantops_exporter_build_info"
    ]
    assert len(samples) == 1
    labels = samples[0].labels
    assert labels["version"] == build().version and labels["revision"] == build().revision
    assert labels["revision_date"] == build().date and build().revision != "unknown"


def test_transitions_are_logged_once() -> None:
    """The board logs a status change once, not on every run, and names a recovery."""
    from structlog.testing import capture_logs

    board, _health, _registry = setup()
    with capture_logs() as logs:
        board.record(outcome("valkey_ping", Status.OK))
        board.record(outcome("valkey_ping", Status.OK))
        board.record(outcome("valkey_ping", Status.ERROR, Reason.UNREACHABLE))
        board.record(outcome("valkey_ping", Status.ERROR, Reason.UNREACHABLE))
        board.record(outcome("valkey_ping", Status.OK))
    assert [e["event"] for e in logs] == ["check_status", "check_status", "check_recovered"]
    assert logs[1]["log_level"] == "warning" and logs[1]["reason"] == "unreachable"
