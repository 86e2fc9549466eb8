"""Prometheus metrics: a collector that renders the board, and the accumulating metrics.

Gauges are built from the board whenever the exposition renders (so a vanished outcome leaves no
stale series and a scrape does no I/O); histograms and counters are fed once per recorded outcome.
The exposition (exposition.py) renders them when they change, not per scrape: everything here
tells it of its changes (`on_change`), but the process figures, which are read per scrape, and
what is probed at every scrape instead (dependency health, the thresholds, the market's next
open and close, which move when one passes).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from quantops_exporter.accumulators import CounterVec, HistogramVec
from quantops_exporter.board import Board, CheckState, readiness_by_section
from quantops_exporter.build import build
from quantops_exporter.checks.base import Check, Outcome
from quantops_exporter.checks.freshness import freshness_limits
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.checks.verdict import Measure, Reason, Source, Status
from quantops_exporter.exposition import ExposedRegistry
from quantops_exporter.loop_lag import LoopLag
from quantops_exporter.market import AlwaysOpenCalendar, Calendar, TransitionCache, Transitions
from quantops_exporter.sources.health import Dependency, DependencyHealth, Endpoint

_DEFAULTS = Thresholds()
_ALWAYS_OPEN = AlwaysOpenCalendar()
_FROM_LAST_RUN = "(from the check's last run, not computed at scrape time)"
FRESHNESS_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 900.0, 3600.0)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Changed = Callable[[], None]


def _unwatched() -> None:
    """No exposition to tell (a registry of a test's own)."""


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """How a domain Measure is exposed: its metric name, help text and label names."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()


MEASURES: Mapping[Measure, MeasureSpec] = {
    Measure.VALKEY_PING_LATENCY: MeasureSpec(
        "runbook_valkey_ping_latency_seconds", "Valkey PING round-trip time"
    ),
    Measure.KILL_SWITCH_ENGAGED: MeasureSpec(
        "runbook_kill_switch_engaged",
        "1 when the kill switch reads engaged, per source (api, valkey)",
        ("source",),
    ),
    Measure.GATES_ELIGIBLE: MeasureSpec(
        "runbook_gates_eligible", 'Number of sep_rolling_gate series with eligible="1"'
    ),
    Measure.GATE_BUFFER: MeasureSpec(
        "runbook_gate_buffer", "The buf label of sep_rolling_gate per instrument", ("instrument",)
    ),
    Measure.ALLOCATOR_SELECTED: MeasureSpec(
        "runbook_allocator_selected", "Number of sep_allocator_selected series equal to 1"
    ),
    Measure.ALLOCATOR_TOP_K: MeasureSpec("runbook_allocator_top_k", "The configured ALLOC_TOP_K"),
    Measure.ALLOCATOR_INTERVAL: MeasureSpec(
        "runbook_allocator_interval_seconds", "The cadence allocator-lite /status reports"
    ),
    Measure.SESSION_OPEN: MeasureSpec(
        "runbook_market_session_open", "1 while the FX session is open", ("session",)
    ),
    Measure.MARGIN_UTILISATION: MeasureSpec(
        "runbook_margin_utilisation_ratio", "marginUsed / (marginUsed + marginAvailable)"
    ),
    Measure.ALLOCATION_TOTAL: MeasureSpec(
        "runbook_allocation_total_ratio", "Total allocation as a fraction of the budget"
    ),
    Measure.POSITION_MARGIN_RATIO: MeasureSpec(
        "runbook_position_margin_cap_ratio",
        "An open position's margin over its cap min(budget/K, PM_MAX_PER_POS_PCT x budget)",
        ("instrument",),
    ),
    Measure.OPEN_POSITIONS: MeasureSpec("runbook_open_positions", "Number of open positions"),
    Measure.RECOVERY_MARGIN_TO_RELEASE: MeasureSpec(
        "runbook_recovery_margin_to_release",
        "Margin (account currency) to release to bring utilisation below MARGIN_HYST_HIGH "
        "(target below_cap) or 0.03 under it (target buffer, Recovery step 3); 0 within the cap",
        ("target",),
    ),
    Measure.SPREAD_BPS: MeasureSpec(
        "runbook_spread_bps", "(ask - bid) / mid x 1e4 per instrument", ("instrument",)
    ),
    Measure.CANDLES: MeasureSpec(
        "runbook_candles_returned", "M1 candles /api/candles returned", ("instrument",)
    ),
    Measure.UNCONFIGURED_INSTRUMENTS: MeasureSpec(
        "runbook_unconfigured_instruments",
        "Instruments the stack's data named that HOTBAND_PAIRS does not (counted, never labels)",
        ("check",),
    ),
    Measure.DIAGNOSIS_STEP: MeasureSpec(
        "runbook_diagnosis_step",
        "1 for the first failing step of a troubleshooting procedure",
        ("procedure", "step"),
    ),
}


class BoardCollector(Collector):
    """Renders the board's latest outcomes as gauges; touches no I/O.

    `thresholds` returns the knobs of the configuration in force (it changes on reload);
    `market` the calendar's transitions now (the market's next open and close).
    """

    def __init__(
        self,
        board: Board,
        health: DependencyHealth,
        thresholds: Callable[[], Thresholds],
        market: Callable[[], Transitions] = lambda: Transitions(None, None, None),
    ) -> None:
        self._board = board
        self._health = health
        self._thresholds = thresholds
        self._market = market

    def describe(self) -> Iterator[Metric]:
        """The families, without samples (registration reads no state)."""
        return BoardSnapshot((), {}, {}, _DEFAULTS, Transitions(None, None, None)).families(
            fill=False
        )

    def collect(self) -> Iterator[Metric]:
        """Yield every board-derived metric family."""
        return self.snapshot().collect()

    def snapshot(self) -> BoardSnapshot:
        """What the board shows now, frozen: collected later (in the exposition's worker
        thread) it gives the families as they are now, whatever the loop records meanwhile.
        Outcomes are immutable, so this copies references, not outcomes."""
        return BoardSnapshot(
            tuple(
                CheckState(state.check, state.latest, state.last_success_at)
                for state in self._board.states.values()
            ),
            dict(self._health.state),
            dict(self._health.endpoints),
            self._thresholds(),
            self._market(),
        )


@dataclass(frozen=True, slots=True)
class BoardSnapshot(Collector):
    """The board, the dependencies' health (each, and each endpoint), the thresholds and the
    market at one moment."""

    states: tuple[CheckState, ...]
    health: Mapping[Dependency, bool]
    endpoints: Mapping[Endpoint, bool]
    thresholds: Thresholds
    market: Transitions

    def collect(self) -> Iterator[Metric]:
        """Yield every board-derived metric family."""
        return self.families(fill=True)

    def families(self, *, fill: bool) -> Iterator[Metric]:
        """The families, with their samples when `fill`."""
        states = self.states
        ok = GaugeMetricFamily(
            "runbook_check_ok",
            f"1 when the check passed or was skipped, 0 otherwise {_FROM_LAST_RUN}",
            labels=["check"],
        )
        expected = GaugeMetricFamily(
            "runbook_check_expected",
            "1 when the check is expected to be healthy now (e.g. the FX market is open)",
            labels=["check"],
        )
        status = GaugeMetricFamily(
            "runbook_check_status",
            f"State set of the check's last status {_FROM_LAST_RUN}",
            labels=["check", "status"],
        )
        reason = GaugeMetricFamily(
            "runbook_check_failure_reason",
            f"State set of the reason of the check's last status {_FROM_LAST_RUN}",
            labels=["check", "reason"],
        )
        last_run = GaugeMetricFamily(
            "runbook_check_last_run_timestamp_seconds",
            "When the check last ran (Unix time)",
            labels=["check"],
        )
        last_success = GaugeMetricFamily(
            "runbook_check_last_success_timestamp_seconds",
            "When the check last finished ok (Unix time)",
            labels=["check"],
        )
        enabled = GaugeMetricFamily(
            "runbook_check_enabled",
            "1 when the check is enabled in the configuration",
            labels=["check"],
        )
        interval = GaugeMetricFamily(
            "runbook_check_interval_seconds",
            "How often the check is configured to run (alerts spot a check that stopped)",
            labels=["check"],
        )
        unreadable = GaugeMetricFamily(
            "runbook_check_unreadable",
            "1 for each endpoint (path) or Valkey key the check's last run could not read, with "
            f"the reason {_FROM_LAST_RUN}",
            labels=["check", "dependency", "item", "reason"],
        )
        for state in states:
            name = state.check.name
            latest = state.latest
            enabled.add_metric([name], float(state.check.enabled))
            interval.add_metric([name], state.check.interval)
            # Before its first run a check is neither ok nor expected, so nothing pages on start-up.
            ok.add_metric([name], float(latest is not None and latest.healthy))
            expected.add_metric([name], float(latest is not None and latest.expected))
            for state_value in Status:
                status.add_metric(
                    [name, state_value], float(latest is not None and latest.status is state_value)
                )
            for why in Reason:
                reason.add_metric([name, why], float(latest is not None and latest.reason is why))
            if latest is not None:
                last_run.add_metric([name], latest.started_at)
                for where in latest.unreadable:
                    unreadable.add_metric(
                        [name, where.dependency.value, where.item, where.reason.value], 1.0
                    )
            if state.last_success_at is not None:
                last_success.add_metric([name], state.last_success_at)
        yield from (ok, expected, status, reason, last_run, last_success, enabled, interval)
        yield unreadable
        yield self._sections(fill)
        yield from self._transitions(fill)
        yield self._freshness(fill)
        limits = GaugeMetricFamily(
            "runbook_freshness_max_age_seconds",
            "The configured freshness limit per source (FRESH_MAX_WS_AGE_SEC, ...)",
            labels=["source"],
        )
        for source, limit in freshness_limits(self.thresholds).items() if fill else ():
            limits.add_metric([source.value], limit)
        yield limits
        yield from self._measures(fill)
        dependency = GaugeMetricFamily(
            "runbook_dependency_up",
            "1 while any endpoint of the dependency answered its latest request, 0 when every "
            "one was refused, hung or 5xx (a refused connection downs them all)",
            labels=["dependency"],
        )
        for dep, up in sorted(self.health.items()) if fill else ():
            dependency.add_metric([dep.value], float(up))
        yield dependency
        endpoint = GaugeMetricFamily(
            "runbook_dependency_endpoint_up",
            "1 when the endpoint (the path asked) answered its latest request, 0 when refused, "
            "hung or 5xx",
            labels=["dependency", "endpoint"],
        )
        for (dep, path), up in sorted(self.endpoints.items()) if fill else ():
            if path:  # Valkey is one endpoint: runbook_dependency_up says it all
                endpoint.add_metric([dep.value, path], float(up))
        yield endpoint

    def _sections(self, fill: bool) -> Metric:
        family = GaugeMetricFamily(
            "runbook_section_ok",
            "1 when every enabled check the runbook section's steps name passed its last run or "
            "skipped itself (no intended session); 0 on fail, error, not run yet or skipped "
            "because the market is closed",
            labels=["section"],
        )
        for readiness in readiness_by_section(self.states) if fill else ():
            family.add_metric([readiness.section.slug], float(readiness.ok))
        return family

    def _transitions(self, fill: bool) -> Iterator[Metric]:
        market = self.market
        for name, moment, documentation in (
            ("next_open", market.next_open, "When the FX market next opens"),
            ("next_close", market.next_close, "When the FX market next closes"),
            ("last_open", market.last_open, "When the FX market last opened"),
        ):
            family = GaugeMetricFamily(
                f"runbook_market_{name}_timestamp_seconds",
                f"{documentation} (Unix time; absent when the calendar never closes)",
            )
            if moment is not None:
                family.add_metric([], moment)
            yield family

    def _freshness(self, fill: bool) -> Metric:
        family = GaugeMetricFamily(
            "runbook_freshness_last_update_timestamp_seconds",
            f"When the source was last updated, per instrument (Unix time) {_FROM_LAST_RUN}",
            labels=["source", "instrument"],
        )
        for outcome in self._latest() if fill else ():
            for item in outcome.freshness:
                if item.updated_at is not None:
                    family.add_metric([item.source.value, item.instrument], item.updated_at)
        return family

    def _measures(self, fill: bool) -> Iterator[Metric]:
        families = {
            measure: GaugeMetricFamily(
                spec.name, f"{spec.documentation} {_FROM_LAST_RUN}", labels=list(spec.labels)
            )
            for measure, spec in MEASURES.items()
        }
        # Keyed by labels so that two checks reporting one number cannot duplicate a series.
        values: dict[tuple[Measure, tuple[str, ...]], float] = {}
        for outcome in self._latest() if fill else ():
            for reading in outcome.readings:
                values[(reading.measure, reading.labels)] = reading.value
        for (measure, labels), value in values.items():
            families[measure].add_metric(list(labels), value)
        yield from families.values()

    def _latest(self) -> Iterator[Outcome]:
        for state in self.states:
            if state.latest is not None:
                yield state.latest


class OutcomeMetrics:
    """Counters and histograms fed once per recorded outcome (subscribe `observe` to the board,
    which tells the exposition of every outcome)."""

    def __init__(
        self, registry: CollectorRegistry, checks: Iterable[Check], on_change: Changed = _unwatched
    ) -> None:
        self._changed = on_change
        self.runs = CounterVec(
            "runbook_check_runs", "Check runs by resulting status", ["check", "status"], registry
        )
        self.duration = HistogramVec(
            "runbook_check_duration_seconds",
            "How long each check run took",
            ["check"],
            registry,
            DURATION_BUCKETS,
        )
        self.age = HistogramVec(
            "runbook_freshness_age_seconds",
            "Age of each source per instrument, observed once per check run",
            ["source"],
            registry,
            FRESHNESS_BUCKETS,
        )
        self.add_checks(checks)
        for source in Source:
            self.age.labels(source.value)

    def add_checks(self, checks: Iterable[Check]) -> None:
        """Give new checks their series from the start (at start-up and on reload)."""
        for check in checks:
            self.duration.labels(check.name)
            for status in Status:
                self.runs.labels(check.name, status.value)
        self._changed()

    def observe(self, outcome: Outcome) -> None:
        """Account for one finished run."""
        self.runs.labels(outcome.check, outcome.status.value).inc()
        if outcome.status is not Status.SKIPPED:
            self.duration.labels(outcome.check).observe(outcome.duration)
        ages: dict[Source, list[float]] = {}  # one call per source, not per instrument
        for item in outcome.freshness:
            if item.updated_at is not None:
                ages.setdefault(item.source, []).append(
                    max(0.0, outcome.started_at - item.updated_at)
                )
        for source, values in ages.items():
            self.age.labels(source.value).observe_many(values)


class SchedulerMetrics:
    """How punctually the scheduler starts runs, and the runs it could not start, by check.

    The scheduler updates these without the board hearing of it, so each metric is reached
    through a property that tells the exposition (`on_change`): reading one is for updating it,
    and the update lands before any render can run (both happen in one step of the event loop).
    """

    def __init__(
        self, registry: CollectorRegistry, checks: Iterable[Check], on_change: Changed = _unwatched
    ) -> None:
        self._changed = on_change
        self._lag = HistogramVec(
            "quantops_exporter_scheduler_lag_seconds",
            "How late each run started against its schedule",
            ["check"],
            registry,
            (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            on_change,
        )
        self._missed = Counter(
            "quantops_exporter_scheduler_missed_runs",
            "Runs not started because they were too late (misfire grace exceeded)",
            ["check"],
            registry=registry,
        )
        self._overlapped = Counter(
            "quantops_exporter_scheduler_overlapping_runs",
            "Runs skipped because the previous run of the check was still going",
            ["check"],
            registry=registry,
        )
        self._clock_steps = Counter(
            "quantops_exporter_clock_steps",
            "Wall-clock steps (of more than 0.5 s) the scheduler followed to keep check cadence",
            registry=registry,
        )
        self.add_checks(checks)

    def add_checks(self, checks: Iterable[Check]) -> None:
        """Give new checks their series from the start (at start-up and on reload)."""
        for check in checks:
            self._lag.labels(check.name)
            self._missed.labels(check.name)
            self._overlapped.labels(check.name)
        self._changed()

    @property
    def lag(self) -> HistogramVec:
        """How late each run started against its schedule, by check."""
        self._changed()
        return self._lag

    @property
    def missed(self) -> Counter:
        """Runs not started because they were too late, by check."""
        self._changed()
        return self._missed

    @property
    def overlapped(self) -> Counter:
        """Runs skipped because the previous one was still going, by check."""
        self._changed()
        return self._overlapped

    @property
    def clock_steps(self) -> Counter:
        """Wall-clock steps the scheduler followed."""
        self._changed()
        return self._clock_steps


class ReloadMetrics:
    """Whether the last configuration reload worked, and when one last did."""

    def __init__(self, registry: CollectorRegistry, on_change: Changed = _unwatched) -> None:
        self._changed = on_change
        self.successful = Gauge(
            "quantops_exporter_config_last_reload_successful",
            "1 when the last configuration reload succeeded (or none was tried), 0 after a failure",
            registry=registry,
        )
        self.success_timestamp = Gauge(
            "quantops_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (start-up or reload)",
            registry=registry,
        )
        self.successful.set(1)
        self.success_timestamp.set_to_current_time()

    def record(self, ok: bool) -> None:
        """Account for one reload attempt."""
        self.successful.set(float(ok))
        if ok:
            self.success_timestamp.set_to_current_time()
        self._changed()


@dataclass(frozen=True, slots=True)
class MetricsBundle:
    """The metric objects the runtime updates."""

    collector: BoardCollector
    outcomes: OutcomeMetrics
    scheduler: SchedulerMetrics
    reload: ReloadMetrics
    loop_lag: LoopLag

    def add_checks(self, checks: Iterable[Check]) -> None:
        """Give every check of a new catalog its series from the start."""
        checks = tuple(checks)
        self.outcomes.add_checks(checks)
        self.scheduler.add_checks(checks)


class BuildInfoCollector(Collector):
    """`quantops_exporter_build_info`: the version, source revision and Python running."""

    def collect(self) -> Iterator[Metric]:
        """Yield the build info family."""
        info = InfoMetricFamily("quantops_exporter_build", "Build information")
        built = build()
        info.add_metric(
            [],
            {
                "version": built.version,
                "revision": built.revision,
                "revision_date": built.date,
                "python_version": platform.python_version(),
            },
        )
        yield info


def build_registry(
    board: Board,
    health: DependencyHealth,
    checks: Iterable[Check],
    thresholds: Callable[[], Thresholds] = lambda: _DEFAULTS,
    calendar: Callable[[], Calendar] = lambda: _ALWAYS_OPEN,
    clock: Callable[[], float] = time.time,
    *,
    created: bool = False,
) -> tuple[CollectorRegistry, MetricsBundle]:
    """A fresh registry with every exporter metric, the board subscribed to its accumulators.

    The registry serves /metrics through its exposition: every family registered here but the
    process figures is rendered when it changes (each tells the exposition), the process figures
    and anything registered later on every scrape. `thresholds` and `calendar` return those of
    the configuration in force. `created` keeps the `_created` series of counters and
    histograms (QUANTOPS_CREATED_SERIES; off, as in most exporters).
    """
    checks = tuple(checks)
    registry = ExposedRegistry(created=created)
    exposition = registry.exposition
    market = TransitionCache(calendar, clock)
    collector = BoardCollector(board, health, thresholds, market)
    registry.register(collector)
    registry.register(BuildInfoCollector())
    outcome_metrics = OutcomeMetrics(registry, checks, exposition.changed)
    scheduler_metrics = SchedulerMetrics(registry, checks, exposition.changed)
    reload_metrics = ReloadMetrics(registry, exposition.changed)
    registry.store_registered()
    # Live (CPU, memory and descriptors move by themselves), so after every stored family: the
    # stored bytes are a prefix of every body.
    ProcessCollector(registry=registry)
    loop_lag = LoopLag(registry)
    board.subscribe(outcome_metrics.observe)
    board.on_change(exposition.changed)  # an outcome recorded, a new catalog
    # No change hook: compared at every scrape with what the last render read. The market's
    # next open and close move when one passes, with no outcome to tell of it.
    exposition.probe(lambda: tuple(health.endpoints.items()), thresholds, market)
    bundle = MetricsBundle(collector, outcome_metrics, scheduler_metrics, reload_metrics, loop_lag)
    return registry, bundle
