"""Recovery §3 answered with a number, read from a simulated stack over real Valkey and HTTP."""

from __future__ import annotations

import pytest

from quantops_exporter.app import run_once
from quantops_exporter.board import Board
from quantops_exporter.market import AlwaysOpenCalendar
from quantops_exporter.metrics import build_registry
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.status_page import render_status_page
from tests.integration.conftest import generation_for

pytestmark = pytest.mark.integration

# The margin_high scenario: used 45,000 of 100,000 (0.45); closing moves margin to available.
SIZED = (
    "release more than 15,000 of margin (used 45,000 of 100,000) to get below 0.30, 18,000 to "
    "reach 0.27 (the runbook's <=3% buffer)"
)


async def test_margin_high_is_sized_in_summaries_page_and_gauge(sim: SepSimulator) -> None:
    """margin_utilisation and exposure_within_cap name the margin to release, exposure names
    the positions over their cap (none here), the status page shows it, and
    runbook_recovery_margin_to_release carries both figures."""
    await sim.set_scenario(Scenario.MARGIN_HIGH)
    generation = generation_for(sim)
    results = await run_once(
        generation, only=frozenset({"margin_utilisation", "exposure_within_cap"})
    )
    summaries = {check.name: outcome.summary for check, outcome in results}
    assert SIZED in summaries["margin_utilisation"], summaries
    assert SIZED in summaries["exposure_within_cap"], summaries
    assert "no position is over its per-position cap" in summaries["exposure_within_cap"]
    board = Board(generation.catalog)
    for _check, outcome in results:
        board.record(outcome)
    page = render_status_page(board.states, AlwaysOpenCalendar())
    assert "release more than 15,000 of margin" in page
    registry, _ = build_registry(board, DependencyHealth(), generation.catalog)
    values = {
        sample.labels["target"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "runbook_recovery_margin_to_release"
    }
    assert values == {"below_cap": pytest.approx(15_000), "buffer": pytest.approx(18_000)}


async def test_within_the_cap_there_is_nothing_to_release(sim: SepSimulator) -> None:
    """Healthy: both checks ok, the gauge 0 for both targets, no sizing in the summaries."""
    results = await run_once(
        generation_for(sim), only=frozenset({"margin_utilisation", "exposure_within_cap"})
    )
    for _check, outcome in results:
        assert outcome.status == "ok" and "release" not in outcome.summary
        assert {r.value for r in outcome.readings if r.labels in (("below_cap",), ("buffer",))} == {
            0.0
        }
