"""Regenerate (or `--check`) every generated file under deploy/.

    python -m quantops_exporter.deploykit                 # rewrite the files in ./deploy
    python -m quantops_exporter.deploykit --check         # exit 1 naming any stale file (CI)
    python -m quantops_exporter.deploykit --job my-job --runbook-url https://wiki/runbook.md \\
        --deploy-dir /tmp/out                             # your scrape job and runbook copy

The promtool tests are written for the default job and runbook URL only: they test the rules'
logic against the shipped files, which a custom job or URL does not change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from quantops_exporter.checks.catalog import CHECKS, DEFAULT_RUNBOOK_URL
from quantops_exporter.deploykit.dashboard import build_dashboard
from quantops_exporter.deploykit.rule_tests import build_tests
from quantops_exporter.deploykit.rules import DEFAULT_JOB, build_rules, prometheus_rule, render

RULES = Path("prometheus/rules/quantops-runbook.rules.yml")
PROMTOOL_TESTS = Path("prometheus/tests/quantops-runbook.test.yml")
PROMETHEUS_RULE = Path("kubernetes/prometheusrule.yaml")
DASHBOARD = Path("grafana/dashboards/quantops-runbook.json")


def generated_files(
    runbook_url: str = DEFAULT_RUNBOOK_URL, job: str = DEFAULT_JOB
) -> dict[Path, Callable[[], str]]:
    """Each generated file (relative to the deploy directory) and how to render it."""
    rules = build_rules(CHECKS, runbook_url, job)
    files: dict[Path, Callable[[], str]] = {
        RULES: lambda: render(rules),
        PROMETHEUS_RULE: lambda: render(prometheus_rule(rules)),
        DASHBOARD: lambda: json.dumps(build_dashboard(), indent=2) + "\n",
    }
    if (runbook_url, job) == (DEFAULT_RUNBOOK_URL, DEFAULT_JOB):
        files[PROMTOOL_TESTS] = lambda: render(build_tests())
    return files


def main(argv: list[str] | None = None) -> int:
    """Write or check the generated files; the exit code says whether they were in step."""
    parser = argparse.ArgumentParser(
        prog="python -m quantops_exporter.deploykit",
        description="Regenerate the alert rules, their promtool tests, the PrometheusRule and "
        "the Grafana dashboard from the check catalog.",
    )
    parser.add_argument("--deploy-dir", type=Path, default=Path("deploy"), metavar="DIR")
    parser.add_argument(
        "--runbook-url",
        default=DEFAULT_RUNBOOK_URL,
        help="base URL of your copy of the runbook (anchors are appended)",
    )
    parser.add_argument(
        "--job", default=DEFAULT_JOB, help="the Prometheus job_name that scrapes the exporter"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is not up to date"
    )
    args = parser.parse_args(argv)
    stale = []
    for relative, content in generated_files(args.runbook_url, args.job).items():
        path = args.deploy_dir / relative
        text = content()
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"{path} is not what the catalog generates", file=sys.stderr)
        print("run: python -m quantops_exporter.deploykit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
