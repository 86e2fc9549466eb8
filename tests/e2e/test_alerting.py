"""End to end with the real programs: a fault in the simulated stack pages through real
Prometheus (the shipped rules) and real Alertmanager (the shipped config), exactly once, with
its runbook link; it resolves after recovery; a closed market does not page; every dashboard
query parses and returns data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import free_port
from tests.deploy.oracles import panel_queries
from tests.e2e.conftest import binary, spawn, stop, until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/quantops-runbook.rules.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[str]:
    """Real Alertmanager with the shipped configuration."""
    port = free_port()
    process = await spawn(
        [
            binary("prometheus-alertmanager"),
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp_path / "alertmanager.log",
        f"http://127.0.0.1:{port}/-/ready",
    )
    yield f"http://127.0.0.1:{port}"
    await stop(process)


@pytest.fixture
async def prometheus(tmp_path: Path, exporter: int, alertmanager: str) -> AsyncIterator[str]:
    """Real Prometheus with the shipped rules; only the intervals are shortened."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "quantops-exporter",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter}"]}],
                    }
                ],
            }
        )
    )
    process = await spawn(
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s",
        ],
        tmp_path / "prometheus.log",
        f"http://127.0.0.1:{port}/-/ready",
    )
    yield f"http://127.0.0.1:{port}"
    await stop(process)


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> list[Any]:
    """An instant query; the result vector (fails on a PromQL error)."""
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


async def active_alerts(http: aiohttp.ClientSession, alertmanager: str) -> list[dict[str, Any]]:
    """Alertmanager's active, unsilenced, uninhibited alerts from our rules."""
    async with http.get(
        f"{alertmanager}/api/v2/alerts",
        params={"active": "true", "silenced": "false", "inhibited": "false"},
    ) as response:
        alerts = await response.json()
    return [a for a in alerts if a["labels"]["alertname"].startswith("SepRunbook")]


async def test_fault_pages_once_resolves_and_a_closed_market_stays_silent(
    stack: tuple[SepSimulator, Any], prometheus: str, alertmanager: str
) -> None:
    """The whole alerting path, with the shipped rules and configuration."""
    sim, calendar = stack
    async with aiohttp.ClientSession() as http:
        # Healthy: Prometheus sees every check ok.
        await until(
            lambda: _count_is(http, prometheus, "runbook_check_ok == 1", len(CHECKS)),
            30,
            "every check ok in Prometheus",
        )
        await asyncio.sleep(3)  # rate() over the dashboard's windows needs a few samples

        # Every dashboard panel query parses and returns data.
        for expr in panel_queries():
            result = await query(http, prometheus, expr.replace("$instance", ".*"))
            assert result, f"dashboard query returned no data: {expr}"

        # A fault pages exactly once, for the right check, with its runbook link.
        await sim.set_scenario(Scenario.STALE_MANIFOLD)
        alerts = await until(
            lambda: active_alerts(http, alertmanager), 90, "the manifold alert in Alertmanager"
        )
        assert [a["labels"]["alertname"] for a in alerts] == ["SepRunbookManifoldStale"]
        (alert,) = alerts
        assert alert["labels"]["check"] == "manifold_freshness"
        assert alert["labels"]["severity"] == "page"
        assert alert["annotations"]["runbook_url"].endswith(
            "02_Operations_Runbook.md#pre-open-spin-up-510-minutes"
        )
        assert "Reason: stale" in alert["annotations"]["description"]

        # Recovery resolves it.
        await sim.set_scenario(Scenario.HEALTHY)

        async def resolved() -> bool:
            return not await active_alerts(http, alertmanager)

        await until(resolved, 60, "the alert resolved after recovery")

        # The market closes: the same fault is expected and must not page.
        calendar.open = False
        await sim.set_scenario(Scenario.STALE_MANIFOLD)
        await until(
            lambda: _count_is(
                http, prometheus, 'runbook_check_expected{check="manifold_freshness"} == 0', 1
            ),
            30,
            "manifold_freshness not expected while closed",
        )
        await asyncio.sleep(40)  # longer than the alert's 30 s `for:`
        assert await active_alerts(http, alertmanager) == []
        assert await query(http, prometheus, 'ALERTS{alertname=~"SepRunbook.*"}') == []


async def _count_is(http: aiohttp.ClientSession, prometheus: str, expr: str, count: int) -> bool:
    return len(await query(http, prometheus, expr)) == count
