"""Every simulator scenario fails exactly the checks it should, on real Valkey and real HTTP."""

from __future__ import annotations

import pytest

from quantops_exporter.app import open_context, run_once
from quantops_exporter.checks.base import Outcome
from quantops_exporter.checks.catalog import CHECK_NAMES, CHECKS
from quantops_exporter.checks.verdict import Reason, Status, Unreadable
from quantops_exporter.runner import run_check
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.state import TimeUnit, Variant
from quantops_exporter.sources.health import Dependency, DependencyHealth
from tests.integration.conftest import generation_for
from tests.integration.scenario_expectations import DIAGNOSIS_STEPS, EXPECTED_FAILURES

pytestmark = pytest.mark.integration

EXPECTED_REASONS = {
    Scenario.STALE_MANIFOLD: {"manifold_freshness": Reason.STALE},
    Scenario.SIGNALS_STALLED: {"signal_freshness": Reason.STALE},
    Scenario.GATES_BLOB_STALE: {"gates_blob_freshness": Reason.STALE},
    Scenario.KILL_SWITCH_ENGAGED: {"kill_switch": Reason.UNEXPECTED_VALUE},
    Scenario.KILL_SWITCH_MISMATCH: {"kill_switch": Reason.MISMATCH},
    Scenario.BAD_PAYLOAD: {
        "manifold_freshness": Reason.BAD_PAYLOAD,
        "gates_blob_freshness": Reason.WRONG_TYPE,
    },
    Scenario.VALKEY_DOWN: {
        "valkey_ping": Reason.UNREACHABLE,
        "manifold_freshness": Reason.UNREACHABLE,
    },
    Scenario.KILL_SWITCH_500: {"kill_switch": Reason.HTTP_ERROR},
}


async def outcomes(sim: SepSimulator, **values: object) -> dict[str, tuple[Status, Reason, str]]:
    """Run the catalog once against `sim`; (status, reason, summary) per check."""
    return {name: (o.status, o.reason, o.summary) for name, o in (await run(sim, **values)).items()}


async def run(sim: SepSimulator, **values: object) -> dict[str, Outcome]:
    """Run the catalog once against `sim`; the outcome per check."""
    if sim.scenario is Scenario.API_SLOW:
        # Hung endpoints end at each check's timeout: keep them short here.
        values.setdefault("checks", {c.name: {"timeout_seconds": 1.0} for c in CHECKS})
    results = await run_once(generation_for(sim, **values))
    return {o.check: o for _c, o in results}


def test_every_scenario_names_only_real_checks() -> None:
    """The expectations table covers every scenario and names only catalog checks."""
    assert set(EXPECTED_FAILURES) == set(Scenario)
    for failing in EXPECTED_FAILURES.values():
        assert failing <= CHECK_NAMES


@pytest.mark.parametrize("scenario", list(Scenario))
async def test_scenario_fails_exactly_the_expected_checks(
    sim: SepSimulator, scenario: Scenario
) -> None:
    """The scenario's checks fail (or error) with the right reason; every other check is ok."""
    await sim.set_scenario(scenario)
    seen = await outcomes(sim)
    assert set(seen) == CHECK_NAMES
    failing = {name for name, (status, _r, _s) in seen.items() if status is not Status.OK}
    assert failing == EXPECTED_FAILURES[scenario], seen
    for name, reason in EXPECTED_REASONS.get(scenario, {}).items():
        assert seen[name][1] is reason, seen[name]


@pytest.mark.parametrize("scenario", list(DIAGNOSIS_STEPS))
async def test_flat_scenarios_name_their_runbook_step(
    sim: SepSimulator, scenario: Scenario
) -> None:
    """Flat while green: the diagnosis reports the first failing runbook step, with advice."""
    await sim.set_scenario(scenario)
    outcome = (await run(sim))["no_positions_diagnosis"]
    assert outcome.status is Status.FAIL
    assert outcome.observations["step"] == DIAGNOSIS_STEPS[scenario]
    steps = {r.labels[1]: r.value for r in outcome.readings}
    assert [step for step, on in steps.items() if on == 1] == [DIAGNOSIS_STEPS[scenario]]
    assert "step " + DIAGNOSIS_STEPS[scenario] in outcome.summary


async def test_one_failing_endpoint_is_named_and_the_api_stays_up(sim: SepSimulator) -> None:
    """/api/kill-switch answering 500 while every other endpoint answers: the kill switch
    names that endpoint, and the API reads up (it used to alternate request by request)."""
    await sim.set_scenario(Scenario.KILL_SWITCH_500)
    health, generation = DependencyHealth(), generation_for(sim)
    async with open_context(generation, health) as ctx:
        outcomes = {check.name: await run_check(check, ctx) for check in generation.enabled}
    assert outcomes["kill_switch"].unreadable == (
        Unreadable(Dependency.API, "/api/kill-switch", Reason.HTTP_ERROR),
    )
    assert health.state[Dependency.API] is True
    assert health.endpoints[(Dependency.API, "/api/kill-switch")] is False


async def test_scenario_recovers_when_switched_back(sim: SepSimulator) -> None:
    """After a fault scenario (even Valkey down and back), healthy gives all ok again."""
    await sim.set_scenario(Scenario.VALKEY_DOWN)
    assert (await outcomes(sim))["valkey_ping"][0] is Status.ERROR
    await sim.set_scenario(Scenario.HEALTHY)
    seen = await outcomes(sim)
    assert {s for s, _r, _m in seen.values()} == {Status.OK}, seen


@pytest.mark.parametrize(
    "variant",
    [
        Variant(manifold_ts_field="ts", manifold_ts_unit=TimeUnit.S),
        Variant(manifold_ts_field="t", manifold_ts_unit=TimeUnit.NS),
        Variant(manifold_ts_field="timestamp", manifold_ts_unit=TimeUnit.ISO),
        Variant(manifold_ts_field="time", manifold_ts_unit=TimeUnit.US),
        Variant(signal_score_unit=TimeUnit.S, gates_blob_ts_unit=TimeUnit.S),
        Variant(signal_score_unit=TimeUnit.NS, gates_blob_ts_unit=TimeUnit.ISO),
        Variant(gates_blob_shape="hysteresis"),
        Variant(trading_mode_shape="openapi", pricing_shape="map", account_wrapped=False),
        Variant(weights_scale="normalized", weights_wrapped=True),
    ],
    ids=lambda v: "-".join(
        str(x)
        for x in (
            v.manifold_ts_field,
            v.manifold_ts_unit,
            v.signal_score_unit,
            v.gates_blob_ts_unit,
            v.gates_blob_shape,
            v.trading_mode_shape,
            v.pricing_shape,
            v.weights_scale,
        )
    ),
)
async def test_contract_variants_are_all_read(sim: SepSimulator, variant: Variant) -> None:
    """Every timestamp field, unit and blob shape the contract lists reads as healthy."""
    sim.variant = variant
    await sim.write_now()
    seen = await outcomes(sim)
    assert {s for s, _r, _m in seen.values()} == {Status.OK}, seen


async def test_signal_score_mode_reads_the_score(sim: SepSimulator) -> None:
    """QUANTOPS_SIGNAL_TS_SOURCE=score reads the ZSET score (ms in the simulator)."""
    seen = await outcomes(sim, signal_ts_source="score")
    assert seen["signal_freshness"][0] is Status.OK


async def test_simulator_teardown_right_after_start(sim: SepSimulator) -> None:
    """A test that ends at once still tears the simulator down promptly (the timeout guards).

    Guard: stopping while the writer's first pipeline was in flight relied on cancellation,
    which redis-py's `wait_for` can swallow on Python 3.11; the writer loop then ran on forever
    and teardown hung. The race is timing-dependent (it hung every time in a module of its
    own, not always here); the stop event now ends the loop whatever the timing.
    """
    assert sim.scenario is Scenario.HEALTHY
