"""Regenerate (or `--check`) every generated file under deploy/.

    python -m quantops_exporter.deploykit                 # rewrite the files in ./deploy
    python -m quantops_exporter.deploykit --check         # exit 1 naming any stale file (CI)
    python -m quantops_exporter.deploykit --env-file /opt/sep/.env.hotband \\
        --runbook-url https://wiki/runbook.md --deploy-dir /tmp/out   # your settings and URL

The rules follow the daemon's own settings, read as the daemon reads them (the environment, and
`--env-file`): per-check intervals (QUANTOPS_CHECKS__<check>__INTERVAL_SECONDS) size each alert's
`for:` and the dependency windows, disabled checks do not count as readers, the URLs say which
dependencies one server serves, QUANTOPS_PREOPEN_READY_WITHIN_SECONDS says how long after the
open PreOpenNotReady waits, and QUANTOPS_RUNBOOK_URL is the default runbook URL.

The promtool tests are written only when the rules are the shipped ones (default settings, job
and runbook URL): they test the rules' logic against the shipped files.

The rules name no job: whatever job, `stack` or other target labels your scrape configuration
gives the exporter, they carry them through (`--job` is accepted for old scripts, and ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECKS, DEFAULT_RUNBOOK_URL
from quantops_exporter.checks.thresholds import PREOPEN_READY_WITHIN_SECONDS
from quantops_exporter.config import ConfigError, Settings, load_settings
from quantops_exporter.deploykit.dashboard import build_dashboard
from quantops_exporter.deploykit.rules import (
    DEFAULT_SERVERS,
    Server,
    build_rules,
    prometheus_rule,
    render,
    servers_of,
)
from quantops_exporter.deploykit.setups import test_file
from quantops_exporter.deploykit.variants import VARIANTS, variant_tests
from quantops_exporter.generation import build_generation
from quantops_exporter.sources.health import Dependency

RULES = Path("prometheus/rules/quantops-runbook.rules.yml")
PROMTOOL_TESTS = Path("prometheus/tests/quantops-runbook.test.yml")
# The invariance variants of every case (deploykit/variants.py), one file each.
VARIANT_TESTS = {
    name: Path(f"prometheus/tests/quantops-runbook.{name}.test.yml") for name in VARIANTS
}
PROMETHEUS_RULE = Path("kubernetes/prometheusrule.yaml")
DASHBOARD = Path("grafana/dashboards/quantops-runbook.json")


def servers(settings: Settings) -> tuple[Server, ...]:
    """Which dependencies one server serves, from the URLs the daemon would use."""
    return servers_of(
        {
            Dependency.VALKEY: settings.valkey_url,
            Dependency.API: settings.sep_api_url,
            Dependency.STACK_METRICS: settings.stack_metrics_url,
            Dependency.ALLOCATOR: settings.allocator_url,
        }
    )


def generated_files(
    runbook_url: str = DEFAULT_RUNBOOK_URL,
    checks: Sequence[Check] = CHECKS,
    served_by: Sequence[Server] = DEFAULT_SERVERS,
    preopen_ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> dict[Path, Callable[[], str]]:
    """Each generated file (relative to the deploy directory) and how to render it."""
    rules = build_rules(checks, runbook_url, served_by, preopen_ready_within)
    files: dict[Path, Callable[[], str]] = {
        RULES: lambda: render(rules),
        PROMETHEUS_RULE: lambda: render(prometheus_rule(rules)),
        DASHBOARD: lambda: json.dumps(build_dashboard(), indent=2) + "\n",
    }
    if rules == build_rules():
        files[PROMTOOL_TESTS] = lambda: render(test_file())
        for name, path in VARIANT_TESTS.items():
            files[path] = lambda name=name: render(variant_tests(name))  # type: ignore[misc]
    return files


def main(argv: list[str] | None = None) -> int:
    """Write or check the generated files; the exit code says whether they were in step."""
    parser = argparse.ArgumentParser(
        prog="python -m quantops_exporter.deploykit",
        description="Regenerate the alert rules, their promtool tests, the PrometheusRule and "
        "the Grafana dashboard from the check catalog and the daemon's settings.",
    )
    parser.add_argument("--deploy-dir", type=Path, default=Path("deploy"), metavar="DIR")
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help="the daemon's env file (the environment is read too, and wins, as for the daemon)",
    )
    parser.add_argument(
        "--runbook-url",
        default=None,
        help="base URL of your copy of the runbook (anchors are appended; default: "
        "QUANTOPS_RUNBOOK_URL, else the published runbook)",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)  # the rules name no job any longer
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is not up to date"
    )
    args = parser.parse_args(argv)
    try:  # the daemon's own configuration, built the one way (cadences and all)
        generation = build_generation(load_settings(args.env_file))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = generation.settings
    if args.job is not None:
        print(
            "note: --job is no longer needed and is ignored: the rules carry whatever job "
            "(and other target labels) Prometheus gives the exporter",
            file=sys.stderr,
        )
    files = generated_files(
        args.runbook_url or settings.runbook_url,
        generation.catalog,
        servers(settings),
        settings.preopen_ready_within_seconds,
    )
    stale = []
    for relative, content in files.items():
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
