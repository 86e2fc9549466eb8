"""The shipped monitoring artifacts: generated rules in step with the catalog, and valid."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from quantops_exporter.checks.catalog import CHECK_NAMES, Anchor
from quantops_exporter.deploykit.__main__ import main as deploykit
from quantops_exporter.deploykit.rules import ALERTS
from tests.conftest import require_program
from tests.deploy.oracles import github_slug

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/quantops-runbook.rules.yml"
PROMTOOL_TESTS = ROOT / "deploy/prometheus/tests/quantops-runbook.test.yml"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
PROMETHEUSRULE = ROOT / "deploy/kubernetes/prometheusrule.yaml"
RUNBOOK = ROOT / "docs/runbook/02_Operations_Runbook.md"


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


def test_job_and_runbook_url_reach_the_rules(tmp_path: Path) -> None:
    """--job and --runbook-url change the exporter alerts' job and every runbook_url."""
    url = "https://wiki.example/runbook.md"
    assert deploykit(["--deploy-dir", str(tmp_path), "--job", "sep-ops", "--runbook-url", url]) == 0
    rules = yaml.safe_load((tmp_path / "prometheus/rules/quantops-runbook.rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert all(a["annotations"]["runbook_url"].startswith(url + "#") for a in alerts)
    down = next(a for a in alerts if a["alert"] == "SepRunbookExporterDown")
    assert down["expr"] == 'up{job="sep-ops"} == 0'
    assert not (tmp_path / "prometheus/tests").exists()  # tests are for the shipped defaults


def test_kubernetes_prometheusrule_carries_the_same_rules() -> None:
    """The PrometheusRule's spec is the rule file."""
    document = yaml.safe_load(PROMETHEUSRULE.read_text())
    assert document["kind"] == "PrometheusRule"
    assert document["spec"] == yaml.safe_load(RULES.read_text())


def test_every_check_has_an_alert_and_every_alert_a_check() -> None:
    """A check without an alert, or an alert naming no check, fails here."""
    assert set(ALERTS) == CHECK_NAMES
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(RULES.read_text())["groups"]}
    per_check = groups["quantops-runbook-checks"]
    assert {rule["labels"]["check"] for rule in per_check} == CHECK_NAMES
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


def test_promtool_unit_tests_pass() -> None:
    """Every alert fires when it should and stays silent when it should (promtool)."""
    result = run(binary("promtool"), "test", "rules", str(PROMTOOL_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
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
