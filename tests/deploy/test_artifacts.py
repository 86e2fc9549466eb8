"""The shipped monitoring artifacts: generated rules in step with the catalog, and valid."""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantops_exporter.checks.catalog import CHECK_NAMES, CHECKS, Anchor
from quantops_exporter.checks.freshness import freshness_limits
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.deploykit.__main__ import VARIANT_TESTS, servers
from quantops_exporter.deploykit.__main__ import main as deploykit
from quantops_exporter.deploykit.rule_tests import (
    FAULT_REASON,
    alert_names,
    check_state,
    dependencies_up,
    expected_check_alert,
    expected_preopen,
    market,
    pre_open,
)
from quantops_exporter.deploykit.rules import (
    ALERTS,
    DEFAULT_SERVERS,
    FRESHNESS_CHECKS,
    HOLDS,
    UNALERTED,
    render,
)
from quantops_exporter.deploykit.variants import VARIANTS
from quantops_exporter.deploykit.week_cases import WARM_UP_FAULTS
from quantops_exporter.simulator import week
from quantops_exporter.sources.health import Dependency
from tests.conftest import make_settings, require_program
from tests.deploy.oracles import github_slug

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/quantops-runbook.rules.yml"
PROMTOOL_TESTS = ROOT / "deploy/prometheus/tests/quantops-runbook.test.yml"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
PROMETHEUSRULE = ROOT / "deploy/kubernetes/prometheusrule.yaml"
RUNBOOK = ROOT / "docs/runbook/02_Operations_Runbook.md"
ALERTS_DOC = ROOT / "docs/alerts.md"


def binary(name: str) -> str:
    """A Prometheus or browser tool from Debian's packages (.ci/run installs them)."""
    return require_program(name, "apt-get install prometheus prometheus-alertmanager chromium")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root."""
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_committed_files_are_the_generated_ones(capsys: pytest.CaptureFixture[str]) -> None:
    """Rules, promtool tests, PrometheusRule and dashboard are exactly what the catalog
    generates (`python -m quantops_exporter.deploykit --check`, as CI runs it)."""
    assert deploykit(["--check", "--deploy-dir", str(ROOT / "deploy")]) == 0, capsys.readouterr()


def test_a_stale_file_is_named_and_fails_the_check(tmp_path: Path) -> None:
    """--check fails naming a hand-edited file, and a plain run rewrites it."""
    assert deploykit(["--deploy-dir", str(tmp_path)]) == 0
    rules = tmp_path / "prometheus/rules/quantops-runbook.rules.yml"
    rules.write_text(rules.read_text().replace("for: 30s", "for: 5m"))
    assert deploykit(["--check", "--deploy-dir", str(tmp_path)]) == 1
    assert deploykit(["--deploy-dir", str(tmp_path)]) == 0
    assert deploykit(["--check", "--deploy-dir", str(tmp_path)]) == 0


def test_runbook_url_reaches_the_rules_and_job_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--runbook-url is the base of every runbook_url; --job (the rules name no job any longer)
    is accepted for old scripts, said to be ignored, and changes nothing."""
    url = "https://wiki.example/runbook.md"
    assert deploykit(["--deploy-dir", str(tmp_path / "a"), "--runbook-url", url]) == 0
    assert deploykit(["--deploy-dir", str(tmp_path / "b"), "--job", "x", "--runbook-url", url]) == 0
    assert "--job is no longer needed and is ignored" in capsys.readouterr().err
    rule_file = "prometheus/rules/quantops-runbook.rules.yml"
    text = (tmp_path / "a" / rule_file).read_text()
    assert text == (tmp_path / "b" / rule_file).read_text()
    alerts = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r]
    assert all(a["annotations"]["runbook_url"].startswith(url + "#") for a in alerts)
    assert not (tmp_path / "a/prometheus/tests").exists()  # tests are for the shipped defaults


def test_kubernetes_prometheusrule_carries_the_same_rules() -> None:
    """The PrometheusRule's spec is the rule file."""
    document = yaml.safe_load(PROMETHEUSRULE.read_text())
    assert document["kind"] == "PrometheusRule"
    assert document["spec"] == yaml.safe_load(RULES.read_text())


def test_every_check_that_can_fail_has_an_alert_and_every_alert_a_check() -> None:
    """A check without an alert (unless it never fails: UNALERTED, proven by the fuzz test),
    or an alert naming no check, fails here."""
    assert set(ALERTS) | set(UNALERTED) == CHECK_NAMES and not set(ALERTS) & set(UNALERTED)
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(RULES.read_text())["groups"]}
    per_check = groups["quantops-runbook-checks"]
    assert {rule["labels"]["check"] for rule in per_check} == set(ALERTS)
    for rule in per_check:
        assert f'check="{rule["labels"]["check"]}"' in rule["expr"]
    names = [r["alert"] for g in groups.values() for r in g if "alert" in r]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"SepRunbook[A-Z][A-Za-z]+", n) for n in names)


def test_every_alert_is_labelled_and_annotated() -> None:
    """severity page|ticket; summary, description and runbook_url on every alert."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])


def test_runbook_anchors_are_real_headings() -> None:
    """Each runbook_url anchor is a heading of the runbook (GitHub's slug rules)."""
    headings = {
        github_slug(line.lstrip("#"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    assert {a.value for a in Anchor} <= headings


def test_promtool_check_rules() -> None:
    """promtool accepts the rule file."""
    result = run(binary("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", ["", *VARIANTS])
def test_promtool_unit_tests_pass(variant: str) -> None:
    """Every alert fires when it should and stays silent when it should (promtool); and so in
    each invariance variant: beside a second stack with an extra target label, with twinned
    replicas, under a job renamed midway (deploykit/variants.py)."""
    path = ROOT / "deploy" / VARIANT_TESTS[variant] if variant else PROMTOOL_TESTS
    # GOGC=400: a quarter of the garbage collections, 17% less CPU for the same verdicts (69 s
    # -> 57 s of CPU for the base file, 77 -> 137 MB peak): these four runs are ~40% of the
    # suite's CPU.
    result = subprocess.run(
        [binary("promtool"), "test", "rules", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOGC": "400"},
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config() -> None:
    """The shipped Prometheus configuration is valid, rules included."""
    result = run(binary("promtool"), "check", "config", str(PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config() -> None:
    """The shipped Alertmanager configuration is valid."""
    result = run(binary("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    """The compose Prometheus config is valid once the rules are where compose mounts them."""
    config = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    config["rule_files"] = [str(RULES)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run(binary("promtool"), "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_and_kubernetes_manifests_hold_together() -> None:
    """Every file compose mounts exists; the manifests parse; scrape jobs match the rules."""
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / "deploy" / source).exists(), source
    kustomization = yaml.safe_load((ROOT / "deploy/kubernetes/kustomization.yaml").read_text())
    kinds = set()
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((ROOT / "deploy/kubernetes" / name).read_text()):
            kinds.add(document["kind"])
    assert {"Deployment", "Service", "ServiceMonitor", "PrometheusRule"} <= kinds
    monitor = yaml.safe_load((ROOT / "deploy/kubernetes/servicemonitor.yaml").read_text())
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "quantops-exporter"


def _alerts(deploy: Path) -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load((deploy / "prometheus/rules/quantops-runbook.rules.yml").read_text())
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_a_configured_interval_changes_the_hold(tmp_path: Path) -> None:
    """The generator reads the daemon's settings: a manifold check every 60 s holds its page
    for three runs (3 m, not 30 s), and promtool proves the new hold on the written rules."""
    env = tmp_path / "env"
    env.write_text("QUANTOPS_CHECKS__MANIFOLD_FRESHNESS__INTERVAL_SECONDS=60\n")
    assert deploykit(["--deploy-dir", str(tmp_path / "default")]) == 0
    assert deploykit(["--deploy-dir", str(tmp_path / "slow"), "--env-file", str(env)]) == 0
    assert _alerts(tmp_path / "default")["SepRunbookManifoldStale"]["for"] == "30s"
    assert _alerts(tmp_path / "slow")["SepRunbookManifoldStale"]["for"] == "3m"
    assert not (tmp_path / "slow/prometheus/tests").exists()  # not the shipped rules
    manifold = next(c for c in CHECKS if c.name == "manifold_freshness")
    case = {
        "interval": "1m",
        "input_series": check_state(manifold) + dependencies_up(manifold.dependencies),
        "alert_rule_test": [
            {"eval_time": "2m30s", "alertname": "SepRunbookManifoldStale", "exp_alerts": []},
            {
                "eval_time": "5m",
                "alertname": "SepRunbookManifoldStale",
                "exp_alerts": [expected_check_alert(manifold)],
            },
        ],
    }
    tests = tmp_path / "slow/prometheus/tests/hold.test.yml"
    tests.parent.mkdir(parents=True)
    tests.write_text(
        render({"rule_files": ["../rules/quantops-runbook.rules.yml"], "tests": [case]})
    )
    result = run(binary("promtool"), "test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pre_open_delay_is_the_configured_one(tmp_path: Path) -> None:
    """QUANTOPS_PREOPEN_READY_WITHIN_SECONDS=600 moves PreOpenNotReady to 10 minutes after the
    open: promtool proves it silent at 9 and firing at 11 on the written rules."""
    env = tmp_path / "env"
    env.write_text("QUANTOPS_PREOPEN_READY_WITHIN_SECONDS=600\n")
    assert deploykit(["--deploy-dir", str(tmp_path), "--env-file", str(env)]) == 0
    alert = _alerts(tmp_path)["SepRunbookPreOpenNotReady"]
    assert "> 600 < 3600" in alert["expr"]
    assert _alerts(ROOT / "deploy")["SepRunbookPreOpenNotReady"]["expr"].count("> 300 < 3600") == 1
    topk = next(c for c in CHECKS if c.name == "allocator_topk")
    case = {
        "interval": "1m",
        "input_series": market() + pre_open() + check_state(topk, reason="mismatch"),
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "SepRunbookPreOpenNotReady", "exp_alerts": []},
            {
                "eval_time": "11m",
                "alertname": "SepRunbookPreOpenNotReady",
                "exp_alerts": [expected_preopen([("allocator_topk", "mismatch")], 600)],
            },
        ],
    }
    tests = tmp_path / "prometheus/tests/preopen.test.yml"
    tests.parent.mkdir(parents=True)
    tests.write_text(
        render({"rule_files": ["../rules/quantops-runbook.rules.yml"], "tests": [case]})
    )
    result = run(binary("promtool"), "test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_environment_is_read_as_the_daemon_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QUANTOPS_CHECKS__* in the environment size the holds; QUANTOPS_RUNBOOK_URL is the base
    of every runbook_url (a --runbook-url flag still wins)."""
    monkeypatch.setenv("QUANTOPS_CHECKS__CANDLES__INTERVAL_SECONDS", "300")
    monkeypatch.setenv("QUANTOPS_RUNBOOK_URL", "https://wiki.example/ops.md")
    assert deploykit(["--deploy-dir", str(tmp_path)]) == 0
    alerts = _alerts(tmp_path)
    assert alerts["SepRunbookCandlesIncomplete"]["for"] == "10m"  # 3 x 300 s, capped at 10 m
    assert alerts["SepRunbookCannotRead"]["for"] == "10m"  # the slowest reader sets its hold
    url = alerts["SepRunbookCandlesIncomplete"]["annotations"]["runbook_url"]
    assert url.startswith("https://wiki.example/ops.md#")


def test_a_bad_setting_is_refused(tmp_path: Path) -> None:
    """The daemon's validation applies: a misspelt variable is exit 2, nothing written."""
    env = tmp_path / "env"
    env.write_text("QUANTOPS_CHECKS__MANIFOLD_FRESHNESS__INTERVAL_SECOND=60\n")
    assert deploykit(["--deploy-dir", str(tmp_path / "out"), "--env-file", str(env)]) == 2
    assert not (tmp_path / "out").exists()


def test_servers_come_from_the_urls() -> None:
    """The backend serves the API and its /metrics unless SEP_METRICS_URL points elsewhere; a
    dependency on the same host and port as another is the same server."""
    assert servers(make_settings()) == DEFAULT_SERVERS
    apart = servers(make_settings(sep_metrics_url="http://metrics:9000/metrics"))
    assert (Dependency.API,) in apart and (Dependency.STACK_METRICS,) in apart
    together = servers(
        make_settings(sep_api_url="http://sep:8000", allocator_url="http://SEP:8000/alloc")
    )
    assert (Dependency.API, Dependency.ALLOCATOR, Dependency.STACK_METRICS) in together


def test_one_server_is_one_dependency_down_alert(tmp_path: Path) -> None:
    """With /metrics on its own server, DependencyDown no longer joins it to the API."""
    env = tmp_path / "env"
    env.write_text("SEP_METRICS_URL=http://metrics:9000/metrics\n")
    assert deploykit(["--deploy-dir", str(tmp_path), "--env-file", str(env)]) == 0
    expr = _alerts(tmp_path)["SepRunbookDependencyDown"]["expr"]
    assert "api,stack_metrics" not in str(expr)
    assert "api,stack_metrics" in str(_alerts(ROOT / "deploy")["SepRunbookDependencyDown"]["expr"])


def test_holds_name_real_checks_and_never_hold_in_a_circle() -> None:
    """Every hold's check and cause exist, and following causes never comes back (a circle
    would silence every alert in it)."""
    causes: dict[str, set[str]] = {}
    for hold in HOLDS:
        assert {hold.check, hold.cause} <= CHECK_NAMES
        causes.setdefault(hold.check, set()).add(hold.cause)

    def reaches(start: str, seen: frozenset[str]) -> None:
        for cause in causes.get(start, ()):
            assert cause not in seen, f"{start} is held by {cause}, which it holds"
            reaches(cause, seen | {cause})

    for check in causes:
        reaches(check, frozenset({check}))


def test_every_freshness_source_has_the_check_that_judges_it() -> None:
    """FreshnessTimestampStale joins each source to its check: none is left out."""
    assert set(FRESHNESS_CHECKS) == set(freshness_limits(Thresholds()))
    assert set(FRESHNESS_CHECKS.values()) <= CHECK_NAMES


def test_the_alerts_reference_names_every_alert() -> None:
    """The alerts reference (docs/alerts.md) says when each alert can and cannot fire: one row
    for the check alerts, a row for each other alert."""
    section = ALERTS_DOC.read_text()
    assert "`SepRunbook<Check>`" in section
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(RULES.read_text())["groups"]}
    for name, rules in groups.items():
        if name == "quantops-runbook-checks":
            continue
        for rule in rules:
            if "alert" in rule:
                assert f"`{rule['alert']}`" in section, rule["alert"]


def test_every_alert_has_warm_up_holiday_and_ha_cases() -> None:
    """Issue 14: besides firing and staying silent while closed, every alert of the rule file
    is asserted (silent, or firing by design) in a warm-up case, a holiday case and an HA case
    of the promtool tests, and every check's alert has a fault of its own to inject."""
    asserted: dict[str, set[str]] = {"warm-up": set(), "holiday": set(), "HA": set()}
    for group in yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]:
        for kind, names in asserted.items():
            if group["name"].startswith(kind):
                names.update(case["alertname"] for case in group["alert_rule_test"])
    every = set(alert_names())
    assert every == {
        r["alert"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    for kind, names in asserted.items():
        assert every <= names, f"no {kind} case for {sorted(every - names)}"
    assert set(FAULT_REASON) == set(ALERTS)


def test_the_warm_up_cases_follow_the_simulated_week() -> None:
    """The promtool warm-up cases fail each check for as long (to the minute they sample at)
    as the `week` schedule's writers take to resume after an open, as the replay lived it."""

    def minute(seconds: float) -> int:
        return math.ceil(seconds / 60) * 60

    requalified = (
        minute(week.SIGNALS_RESUME) + (week.ECHO_MIN_REPETITIONS - 1) * week.EVALUATOR_CADENCE
    )
    assert {name: fails_for for name, (fails_for, _reason) in WARM_UP_FAULTS.items()} == {
        "manifold_freshness": minute(week.HYDRATOR_RESUMES),
        "signal_freshness": minute(week.SIGNALS_RESUME + week.SIGNAL_CADENCE),
        "gates_eligible": requalified,
    }
