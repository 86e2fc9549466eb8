"""Two stacks, two replicas each, in one job with a `stack` target label, replayed against the
shipped alert rules (issue 23): the daemon's real expositions, the shipped rule file, promtool.

Two simulated stacks (`eu`, `us`, each with its own Valkey) and four real daemons (two per
stack, in this process, each on its own port, default cadences) run side by side. For each
fault of `eu` (its manifold stale; its Valkey unreachable; /api/kill-switch answering 500 while
every other endpoint answers) and for the healthy pair, every daemon is scraped for a short
window; the scrapes become promtool series (tests/e2e/replay.py: each exporter's own `instance`,
the `job` Prometheus adds, then `stack`), held 35 minutes, and `promtool test rules` evaluates
the shipped rules on both stacks at once: exactly one alert, of `eu`, carrying `stack="eu"`,
rendered in full (the reason, the exporters, the value, what could not be read), at 5, 15 and
30 minutes; nothing else at any 15 s evaluation. Then the healthy scrapes are split into a job
renamed in the middle of the window (the old pool's samples stay visible, frozen, for the
5-minute lookback): nothing at all for 35 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from quantops_exporter.app import build_exporter
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.kill_switch import KILL_SWITCH_PATH
from quantops_exporter.config import DEFAULT_PAIRS
from quantops_exporter.deploykit.dashboard import FIRING
from quantops_exporter.deploykit.notation import compress, expand, parse, selector
from quantops_exporter.deploykit.rule_tests import (
    PRE_OPEN_URL,
    expected_cannot_read,
    expected_check_alert,
    expected_down,
)
from quantops_exporter.market import AlwaysOpenCalendar
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import ValkeyServer, free_port
from tests.conftest import make_generation, require_program, running_valkey
from tests.deploy.oracles import panel_queries
from tests.e2e.replay import (
    EVALUATION_INTERVAL,
    HOLD,
    JOB,
    Scrape,
    alert_names,
    input_series,
    parse_exposition,
    rule_identifiers,
    steps,
)

# The first test pays for the module's one run (four daemons, four windows, promtool over 35
# minutes of holds for each): about 4 minutes under coverage, over the suite's 240 s limit for a
# hang; 600 s still catches one.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("replay"), pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/quantops-runbook.rules.yml"
STACKS = ("eu", "us")
REPLICAS = ("a", "b")
SCRAPES = 6  # per exporter and window
SCRAPE_EVERY = 2.0  # seconds
EVAL_TIMES = ("5m", "15m", "30m")  # the fault's alert fires by 5 m (the longest hold is 3 m)
SETTLE = 90.0  # seconds a daemon may take to show a fault on a loaded two-core machine
RENAMED_JOB = "sep-ops"
Series = dict[str, str]


@dataclass
class Stack:
    """One simulated stack and its two daemons."""

    name: str
    sim: SepSimulator
    ports: dict[str, int] = field(default_factory=dict)  # instance label -> daemon port


@contextlib.asynccontextmanager
async def daemon(sim: SepSimulator) -> AsyncIterator[int]:
    """A real daemon (default settings and cadences) reading `sim`; its port."""
    assert sim.server is not None
    generation = make_generation(
        valkey_url=sim.server.url,
        sep_api_url=sim.api_url,
        allocator_url=sim.allocator_url,
        hotband_pairs=sim.instruments,
    )
    runner = web.AppRunner(build_exporter(generation).app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def valkeys() -> Iterator[tuple[ValkeyServer, ValkeyServer]]:
    """A Valkey server per stack."""
    with running_valkey() as first, running_valkey() as second:
        yield first, second


async def checks_of(http: aiohttp.ClientSession, port: int) -> dict[str, dict[str, Any]]:
    """A daemon's checks by name (GET /api/v1/checks)."""
    async with http.get(f"http://127.0.0.1:{port}/api/v1/checks") as response:
        return {row["check"]: row for row in (await response.json())["checks"]}


async def until(
    http: aiohttp.ClientSession,
    ports: list[int],
    holds: Callable[[dict[str, dict[str, Any]]], bool],
    what: str,
) -> None:
    """Wait until `holds` is true of every daemon's checks."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            if all([holds(await checks_of(http, port)) for port in ports]):
                return
        await asyncio.sleep(0.5)
    pytest.fail(f"not within {SETTLE:g}s: {what}")


def all_ok(checks: dict[str, dict[str, Any]]) -> bool:
    """Every check ran and passed."""
    return len(checks) == len(CHECKS) and all(c["status"] == "ok" for c in checks.values())


def status_of(check: str, status: str) -> Callable[[dict[str, dict[str, Any]]], bool]:
    """`check` ended its last run with `status`."""
    return lambda checks: checks.get(check, {}).get("status") == status


async def window(
    http: aiohttp.ClientSession, stacks: list[Stack], keep: frozenset[str]
) -> dict[str, tuple[float, list[Scrape]]]:
    """Every daemon scraped SCRAPES times, SCRAPE_EVERY apart: per instance, the replay's
    origin and the scrapes."""
    origin = time.time()
    scrapes: dict[str, list[Scrape]] = {i: [] for s in stacks for i in s.ports}
    for _ in range(SCRAPES):
        for stack in stacks:
            for instance, port in stack.ports.items():
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                second = round(time.time() - origin)
                scrapes[instance].append(Scrape(second, parse_exposition(text, keep)))
        await asyncio.sleep(SCRAPE_EVERY)
    return {instance: (origin, taken) for instance, taken in scrapes.items()}


def relabel(series: list[Series], **labels: str) -> list[Series]:
    """`series` with `labels` added (or replaced)."""
    out = []
    for given in series:
        name, found = parse(given["series"].replace(", ", ","))
        out.append({"series": selector(name, found | labels), "values": given["values"]})
    return out


def stack_series(stacks: list[Stack], taken: dict[str, tuple[float, list[Scrape]]]) -> list[Series]:
    """Every exporter's scrapes as promtool series, each stack's with its `stack` label."""
    series: list[Series] = []
    for stack in stacks:
        for instance in stack.ports:
            origin, scrapes = taken[instance]
            series += relabel(input_series(scrapes, origin, instance), stack=stack.name)
    return series


def renamed(stacks: list[Stack], taken: dict[str, tuple[float, list[Scrape]]]) -> list[Series]:
    """The scrapes with the job renamed halfway: the old pool's series stop after its last
    scrape (no staleness marker: Prometheus writes none for a removed pool), the renamed
    pool's start at its first scrape and are held."""
    series: list[Series] = []
    half = SCRAPES // 2
    for stack in stacks:
        for instance in stack.ports:
            origin, scrapes = taken[instance]
            last = scrapes[half - 1].second
            for old in input_series(scrapes[:half], origin, instance):
                cut = compress(expand(old["values"])[: last + 1])
                series += relabel([{"series": old["series"], "values": cut}], stack=stack.name)
            new = input_series(scrapes[half:], origin, instance)
            series += relabel(new, stack=stack.name, job=RENAMED_JOB)
    return series


def humanize(value: float) -> str:
    """Prometheus's `humanize` template function (SI prefixes, four significant digits)."""
    if value == 0 or math.isnan(value) or math.isinf(value) or abs(value) < 1:
        return f"{value:.4g}"
    prefix = ""
    for unit in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
        if abs(value) < 1000:
            break
        prefix, value = unit, value / 1000
    return f"{value:.4g}{prefix}"


def at(series: list[Series], name: str, second: int, **labels: str) -> list[float]:
    """The value at `second` (the latest sample within the lookback) of every `name` series
    carrying `labels`."""
    found = []
    for given in series:
        series_name, given_labels = parse(given["series"])
        if series_name != name or any(given_labels.get(k) != v for k, v in labels.items()):
            continue
        samples = expand(given["values"])[: second + 1]
        recent = [s for s in samples[-300:] if isinstance(s, float)]
        if recent:
            found.append(recent[-1])
    return found


def on_eu(alert: dict[str, Any]) -> dict[str, Any]:
    """An expected alert of stack eu: the label, its summary saying so."""
    alert["exp_labels"]["stack"] = "eu"
    alert["exp_annotations"]["summary"] += " on eu"
    if alert["exp_annotations"]["runbook_url"].startswith("<"):  # left to the market: none here
        alert["exp_annotations"]["runbook_url"] = PRE_OPEN_URL
    return alert


def promtool_test(
    name: str, series: list[Series], expected: dict[str, Callable[[int], dict[str, Any]]]
) -> dict[str, Any]:
    """Every alert of the shipped rules silent at EVAL_TIMES but the `expected` ones (alert
    name -> the alert expected at a second), and nothing else firing at any evaluation."""
    rule_tests = []
    for eval_time in EVAL_TIMES:
        second = int(eval_time[:-1]) * 60
        for alertname in alert_names(RULES):
            build = expected.get(alertname)
            alerts = [build(second)] if build is not None else []
            rule_tests.append(
                {"alertname": alertname, "eval_time": eval_time, "exp_alerts": alerts}
            )
    others = (
        " unless ".join(
            [
                'count by (alertname, stack, job) (ALERTS{alertstate="firing"}',
                *[f'ALERTS{{alertname="{alertname}"}}' for alertname in expected],
            ]
        )
        + ")"
    )
    return {
        "rule_files": [str(RULES)],
        "evaluation_interval": EVALUATION_INTERVAL,
        "tests": [
            {
                "name": name,
                "interval": "1s",
                "input_series": series,
                "alert_rule_test": rule_tests,
                "promql_expr_test": [
                    {"expr": others, "eval_time": f"{s}s", "exp_samples": []}
                    for s in steps(HOLD - 60)
                ],
            }
        ],
    }


async def run_promtool(promtool: str, path: Path, document: dict[str, Any]) -> str:
    """`promtool test rules` on `document`; its output when it failed, else ""."""
    await asyncio.to_thread(path.write_text, json.dumps(document, indent=1))
    process = await asyncio.create_subprocess_exec(
        promtool,
        "test",
        "rules",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return "" if process.returncode == 0 else output.decode(errors="replace")[-6000:]


@dataclass
class Replays:
    """What the daemons exported: per window, per instance, the replay's origin and scrapes."""

    stacks: list[Stack]
    healthy: dict[str, tuple[float, list[Scrape]]]
    faults: dict[Scenario, dict[str, tuple[float, list[Scrape]]]]


PHASES: tuple[tuple[Scenario, str, str], ...] = (
    (Scenario.STALE_MANIFOLD, "manifold_freshness", "fail"),
    (Scenario.VALKEY_DOWN, "valkey_ping", "error"),
    (Scenario.KILL_SWITCH_500, "kill_switch", "error"),
)


async def _collect(keep: frozenset[str]) -> Replays:
    """Run both stacks and their four daemons; scrape the healthy pair, then each fault of eu."""
    with valkeys() as servers:
        stacks = [
            Stack(
                name,
                SepSimulator(
                    server.url,
                    DEFAULT_PAIRS,
                    calendar=AlwaysOpenCalendar(),
                    server=server,
                    write_every=0.5,
                ),
            )
            for name, server in zip(STACKS, servers, strict=True)
        ]
        eu = stacks[0]
        async with contextlib.AsyncExitStack() as running, aiohttp.ClientSession() as http:
            for stack in stacks:
                await stack.sim.start()
                running.push_async_callback(stack.sim.stop)
                for replica in REPLICAS:
                    port = await running.enter_async_context(daemon(stack.sim))
                    stack.ports[f"{stack.name}-{replica}:9110"] = port
            every = [p for s in stacks for p in s.ports.values()]
            await until(http, every, all_ok, "every check ok on both stacks")
            healthy = await window(http, stacks, keep)
            faults = {}
            for scenario, check, status in PHASES:
                await eu.sim.set_scenario(scenario)
                shows = status_of(check, status)
                await until(http, list(eu.ports.values()), shows, f"{scenario.value} on eu")
                faults[scenario] = await window(http, stacks, keep)
                await eu.sim.set_scenario(Scenario.HEALTHY)
                await until(http, every, all_ok, f"every check ok after {scenario.value}")
    return Replays(stacks, healthy, faults)


@pytest.fixture(scope="module")
def replays() -> Iterator[Replays]:
    """The daemons' expositions, collected once for the module."""
    keep = rule_identifiers(RULES.read_text() + " ".join(panel_queries()))
    yield asyncio.run(_collect(keep))


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool (Debian's prometheus package)."""
    return require_program("promtool", "apt-get install prometheus")


async def test_each_fault_of_one_stack_is_one_alert_carrying_it(
    replays: Replays, promtool: str, tmp_path: Path
) -> None:
    """Each fault of eu (manifold stale, Valkey unreachable, one endpoint answering 500) is
    exactly one alert, carrying stack eu and rendered in full; us and the second replica add
    nothing; the job renamed halfway through the window pages nothing."""
    stacks = replays.stacks
    manifold = next(c for c in CHECKS if c.name == "manifold_freshness")
    eu_instances = tuple(stacks[0].ports)
    stale = stack_series(stacks, replays.faults[Scenario.STALE_MANIFOLD])

    def stale_alert(second: int) -> dict[str, Any]:
        stamps = at(
            stale,
            "runbook_freshness_last_update_timestamp_seconds",
            second,
            source="ws_manifold",
            stack="eu",
        )
        value = humanize(max(second - stamp for stamp in stamps))
        return on_eu(expected_check_alert(manifold, "stale", value=value, seen=eu_instances))

    down = on_eu(expected_down("valkey"))
    item = [(KILL_SWITCH_PATH, "http_error", "kill_switch")]
    blind = on_eu(expected_cannot_read("api", [("kill_switch", "http_error")], item))
    cases = {
        "eu's manifold stale: one ManifoldStale for eu": promtool_test(
            "manifold stale", stale, {"SepRunbookManifoldStale": stale_alert}
        ),
        "eu's Valkey unreachable: one DependencyDown for eu": promtool_test(
            "valkey down",
            stack_series(stacks, replays.faults[Scenario.VALKEY_DOWN]),
            {"SepRunbookDependencyDown": lambda _s: down},
        ),
        "eu's /api/kill-switch answering 500 for 35 minutes: one page": promtool_test(
            "one endpoint 500",
            stack_series(stacks, replays.faults[Scenario.KILL_SWITCH_500]),
            {"SepRunbookCannotRead": lambda _s: blind},
        ),
        "the job renamed halfway through the window: no page": promtool_test(
            "job renamed", renamed(stacks, replays.healthy), {}
        ),
    }
    failures = {}
    for index, (what, document) in enumerate(cases.items()):
        output = await run_promtool(promtool, tmp_path / f"case-{index}.test.yml", document)
        if output:
            failures[what] = output
    assert not failures, "\n\n".join(f"== {what}\n{out}" for what, out in failures.items())


async def test_the_dashboard_fills_under_a_renamed_job_and_lists_firing_alerts(
    replays: Replays, promtool: str, tmp_path: Path
) -> None:
    """Every dashboard panel has data for the exporters of a renamed job (its `instance`
    variable, which lists the job's exporters, selects them), and the firing-alerts table
    shows eu's ManifoldStale and nothing else."""
    stacks = replays.stacks
    series = renamed(stacks, replays.healthy)
    instances = "|".join(i for s in stacks for i in s.ports)
    checks = [
        {
            "expr": f"count({q.replace('$instance', instances).replace('$job', RENAMED_JOB)}) "
            "> bool 0",
            "eval_time": "2m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for q in panel_queries()
    ]
    checks.append(
        {  # the `instance` variable: label_values(...{job=~"$job"}, instance)
            "expr": "count(count by (instance) "
            f'(quantops_exporter_build_info{{job="{RENAMED_JOB}"}}))',
            "eval_time": "2m",
            "exp_samples": [{"labels": "{}", "value": len(STACKS) * len(REPLICAS)}],
        }
    )
    stale = stack_series(stacks, replays.faults[Scenario.STALE_MANIFOLD])
    firing = {
        "expr": FIRING.replace("$job", JOB),
        "eval_time": "10m",
        "exp_samples": [
            {
                "labels": '{alertname="SepRunbookManifoldStale", check="manifold_freshness", '
                'severity="page", stack="eu"}',
                "value": 1,
            }
        ],
    }
    document = {
        "rule_files": [str(RULES)],
        "evaluation_interval": EVALUATION_INTERVAL,
        "tests": [
            {
                "name": "dashboard, renamed job",
                "interval": "1s",
                "input_series": series,
                "promql_expr_test": checks,
            },
            {
                "name": "firing alerts",
                "interval": "1s",
                "input_series": stale,
                "promql_expr_test": [firing],
            },
        ],
    }
    output = await run_promtool(promtool, tmp_path / "dashboard.test.yml", document)
    assert not output, output
