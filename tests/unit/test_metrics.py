"""Metrics rendered from the board: series from start-up, state sets, freshness, accumulators,
runbook sections' readiness and the market's next open and close."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from quantops_exporter.board import Board, readiness_by_section, section_readiness
from quantops_exporter.checks.catalog import CHECKS, CheckOverride, Section, build_catalog
from quantops_exporter.checks.verdict import Freshness, Measure, Reading, Reason, Source, Status
from quantops_exporter.market import AlwaysOpenCalendar, Calendar, FxCalendar
from quantops_exporter.metrics import build_registry
from quantops_exporter.sources.health import Dependency, DependencyHealth
from tests.factories import FrozenClock, outcome

NOW = 1_800_000_000.0
NEW_YORK = ZoneInfo("America/New_York")


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


# -- runbook sections and the market's next open and close ------------------------------------


def sections(registry: CollectorRegistry) -> dict[str, float | None]:
    """runbook_section_ok by section."""
    return {
        section.slug: registry.get_sample_value("runbook_section_ok", {"section": section.slug})
        for section in Section
    }


def test_a_section_is_ok_only_when_every_check_its_steps_name_passed() -> None:
    """Before any run every section reads 0; all ok reads 1; one failing check turns every
    section naming it to 0 (gates_eligible: Pre-Open §3 and Daily §2), no other."""
    board, _health, registry = setup()
    assert set(sections(registry).values()) == {0}
    for check in CHECKS:
        board.record(outcome(check.name))
    assert set(sections(registry).values()) == {1}
    board.record(outcome("gates_eligible", Status.FAIL, Reason.THRESHOLD))
    assert sections(registry) == {
        "pre-open": 0,
        "daily": 0,
        "post-deploy": 1,
        "troubleshooting": 1,
        "recovery": 1,
    }
    board.record(outcome("gates_eligible", Status.ERROR, Reason.TIMEOUT))
    assert sections(registry)["daily"] == 0


def test_a_market_closed_skip_verifies_nothing_but_a_session_skip_passes() -> None:
    """A check skipped because the market is closed leaves its sections at 0 (as `check`
    exits 3: nothing was verified); sessions_open skipping outside the intended sessions is its
    own judgement that trading is not intended now, and passes."""
    board, _health, registry = setup()
    for check in CHECKS:
        board.record(outcome(check.name))
    board.record(outcome("sessions_open", Status.SKIPPED, Reason.SESSION_CLOSED, expected=False))
    assert sections(registry)["pre-open"] == 1
    board.record(
        outcome("manifold_freshness", Status.SKIPPED, Reason.MARKET_CLOSED, expected=False)
    )
    assert sections(registry) == {
        "pre-open": 0,
        "daily": 1,
        "post-deploy": 0,
        "troubleshooting": 0,
        "recovery": 1,
    }


def test_a_disabled_check_is_not_judged() -> None:
    """A disabled check keeps its last verdict, but its sections are judged without it."""
    catalog = build_catalog({"gates_sanity": CheckOverride(enabled=False)})
    board = Board(catalog)
    registry, _ = build_registry(board, DependencyHealth(), catalog)
    for check in catalog:
        board.record(outcome(check.name))
    board.record(outcome("gates_sanity", Status.FAIL, Reason.THRESHOLD))
    assert sections(registry)["pre-open"] == 1
    readiness = section_readiness(board.states.values(), Section.PRE_OPEN)
    assert "gates_sanity" not in readiness.checks and readiness.ok


def test_section_readiness_names_what_fails_and_what_was_not_verified() -> None:
    """The status page's detail: failing (fail, error) and unverified (not run, market closed)."""
    board = Board(CHECKS)
    board.record(outcome("kill_switch", Status.FAIL, Reason.MISMATCH))
    board.record(outcome("trading_mode", Status.ERROR, Reason.TIMEOUT))
    board.record(outcome("signal_freshness", Status.SKIPPED, Reason.MARKET_CLOSED, expected=False))
    readiness = section_readiness(board.states.values(), Section.PRE_OPEN)
    assert readiness.failing == ("kill_switch", "trading_mode")
    assert "signal_freshness" in readiness.unverified and "valkey_ping" in readiness.unverified
    assert len(readiness.checks) == 13 and not readiness.ok
    every = readiness_by_section(board.states.values())
    assert every == tuple(section_readiness(board.states.values(), s) for s in Section)


def market_registry(calendar: Calendar, clock: FrozenClock) -> CollectorRegistry:
    """A registry over the real catalog whose calendar and clock are given."""
    board = Board(CHECKS)
    registry, _ = build_registry(
        board, DependencyHealth(), CHECKS, calendar=lambda: calendar, clock=clock
    )
    return registry


def test_the_market_next_open_and_close_are_timestamps() -> None:
    """NOW is Friday 2027-01-15 03:00 New York: the market closes at 17:00 and reopens on
    Sunday; it last opened the Sunday before. Past the close the series move on."""
    clock = FrozenClock(NOW)
    registry = market_registry(FxCalendar(), clock)
    friday_close = datetime(2027, 1, 15, 17, tzinfo=NEW_YORK).timestamp()
    sunday_open = datetime(2027, 1, 17, 17, tzinfo=NEW_YORK).timestamp()
    last_sunday = datetime(2027, 1, 10, 17, tzinfo=NEW_YORK).timestamp()
    value = registry.get_sample_value
    assert value("runbook_market_next_close_timestamp_seconds") == friday_close
    assert value("runbook_market_next_open_timestamp_seconds") == sunday_open
    assert value("runbook_market_last_open_timestamp_seconds") == last_sunday
    clock.now = friday_close
    assert value("runbook_market_next_close_timestamp_seconds") == friday_close + 7 * 86_400
    assert value("runbook_market_next_open_timestamp_seconds") == sunday_open
    assert value("runbook_market_last_open_timestamp_seconds") == last_sunday


def test_an_always_open_market_has_no_timestamps_not_nan() -> None:
    """QUANTOPS_MARKET_HOURS=always: the three series are absent (the families stay, empty),
    so no rule can read a NaN as a time."""
    registry = market_registry(AlwaysOpenCalendar(), FrozenClock(NOW))
    text = generate_latest(registry).decode()
    for name in ("next_open", "next_close", "last_open"):
        metric = f"runbook_market_{name}_timestamp_seconds"
        assert f"# TYPE {metric} gauge" in text
        assert registry.get_sample_value(metric) is None
    assert "NaN" not in text


@pytest.mark.parametrize("created", [False, True])
def test_created_series_are_off_unless_configured(created: bool) -> None:
    """QUANTOPS_CREATED_SERIES: without it no `_created` sample (most exporters leave them out;
    they doubled what a text scrape carries); with it the counters and histograms have them,
    in every format, and nothing else changes."""
    from prometheus_client import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    from quantops_exporter.board import Board
    from quantops_exporter.checks.catalog import CHECKS
    from quantops_exporter.metrics import build_registry
    from quantops_exporter.sources.health import DependencyHealth
    from tests.factories import outcome

    board = Board(CHECKS)
    registry, _ = build_registry(board, DependencyHealth(), CHECKS, created=created)
    board.record(outcome(CHECKS[0].name))
    for body in (generate_latest(registry), openmetrics(registry)):
        lines = body.decode().splitlines()
        made = [line for line in lines if "_created" in line and not line.startswith("#")]
        assert bool(made) is created, made[:3]
        assert any(line.startswith("runbook_check_runs_total{") for line in lines)
        assert any(line.startswith("runbook_check_duration_seconds_bucket{") for line in lines)
