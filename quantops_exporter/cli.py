"""Command line: `run` (default), `check`, `check-config` and `demo`.

Exit codes: 0 ok, 1 a check failed (check) or the daemon could not start, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from quantops_exporter import __version__
from quantops_exporter.app import run_once, selected_checks, serve
from quantops_exporter.checks.base import MARKS, Check, Outcome, Status
from quantops_exporter.checks.catalog import (
    CHECKS,
    DAILY,
    POST_DEPLOY,
    PRE_OPEN,
    RECOVERY,
    TROUBLESHOOTING,
)
from quantops_exporter.config import ConfigError, Settings, load_settings
from quantops_exporter.log import configure_logging
from quantops_exporter.web import outcome_json
from quantops_exporter.webconfig import WebConfig, load_web_config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
SECTIONS = {
    "pre-open": PRE_OPEN,
    "daily": DAILY,
    "post-deploy": POST_DEPLOY,
    "troubleshooting": TROUBLESHOOTING,
    "recovery": RECOVERY,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    env_help = (
        "read settings from this dotenv file too (e.g. the stack's .env.hotband); "
        "environment variables win over it"
    )
    parser = argparse.ArgumentParser(
        prog="quantops-exporter",
        description="Run the SEP operations runbook as continuous Prometheus checks.",
        epilog="Settings come from environment variables; see README.md or `check-config`.",
    )
    parser.add_argument("--env-file", type=Path, metavar="PATH", help=env_help)
    web_help = (
        "TLS and basic auth for every endpoint, in the Prometheus exporter-toolkit "
        "format (env QUANTOPS_WEB_CONFIG_FILE)"
    )
    parser.add_argument(
        "--web.config.file", dest="web_config_file", type=Path, metavar="PATH", help=web_help
    )
    # Subcommands accept it too; SUPPRESS keeps their default from erasing a value given
    # before the subcommand (`quantops-exporter --env-file F run`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--env-file", type=Path, metavar="PATH", help=env_help, default=argparse.SUPPRESS
    )
    common.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="PATH",
        help=web_help,
        default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon (the default)",
        description="Run every check on its schedule and serve /metrics.",
    )
    check = sub.add_parser(
        "check",
        parents=[common],
        help="run every check once and print a report",
        description="Run every enabled check once; exit 0 when none is fail/error, else 1.",
    )
    check.add_argument("--json", action="store_true", help="print a JSON array instead")
    check.add_argument(
        "--section",
        choices=sorted(SECTIONS),
        help="run only one runbook section's checks (e.g. daily: the Daily Ops Snapshot)",
    )
    sub.add_parser(
        "check-config",
        parents=[common],
        help="validate settings and print them, secrets masked",
        description="Validate the settings; print the effective configuration.",
    )
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run the daemon against a simulated SEP stack",
        description="Start Valkey and a simulated SEP stack on loopback, then the daemon.",
    )
    demo.add_argument(
        "--scenario", default="healthy", help="simulator scenario to start in (default: healthy)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `quantops-exporter` command."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"

    def load() -> Settings:
        """The settings as the command line and environment give them (again on reload)."""
        loaded = load_settings(args.env_file)
        if getattr(args, "web_config_file", None) is not None:
            loaded = loaded.model_copy(update={"web_config_file": args.web_config_file})
        return loaded

    try:
        settings = load()
        web_config = (
            load_web_config(settings.web_config_file)
            if settings.web_config_file is not None
            else None
        )
    except ConfigError as err:
        print(f"quantops-exporter: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if command == "check-config":
        return _check_config(settings)
    if command == "check":
        configure_logging("console", "error")
        return asyncio.run(_check(settings, as_json=args.json, section=args.section))
    configure_logging(settings.log_format.value, settings.log_level.value)
    if command == "demo":
        from quantops_exporter.simulator.demo import run_demo

        return asyncio.run(run_demo(settings, scenario=args.scenario, web_config=web_config))
    return asyncio.run(_run(settings, web_config, load))


def _check_config(settings: Settings) -> int:
    print("configuration is valid; effective settings (secrets masked):")
    for name, value in settings.masked().items():
        print(f"  {name}={value}")
    return EXIT_OK


async def _check(settings: Settings, *, as_json: bool, section: str | None = None) -> int:
    only = None
    if section is not None:
        only = frozenset(c.name for c in CHECKS if c.section == SECTIONS[section])
    progress = Progress(len(selected_checks(settings, only)), enabled=sys.stderr.isatty())
    results = await run_once(settings, only=only, on_done=progress.done)
    progress.finish()
    outcomes = [outcome for _check_row, outcome in results]
    if as_json:
        rows = [outcome_json(o) | {"runbook": c.runbook} for c, o in results]
        print(json.dumps(rows, indent=2))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(render_table(results, colour=colour))
    failed = any(o.status in (Status.FAIL, Status.ERROR) for o in outcomes)
    return EXIT_FAILED if failed else EXIT_OK


class Progress:
    """`running checks… 12/22` on stderr while checks run, on a terminal only."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.count, self.enabled = total, 0, enabled
        self._show()

    def done(self, _outcome: Outcome) -> None:
        """One more check finished."""
        self.count += 1
        self._show()

    def finish(self) -> None:
        """Erase the indicator."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _show(self) -> None:
        if self.enabled:
            sys.stderr.write(f"\rrunning checks\u2026 {self.count}/{self.total}")
            sys.stderr.flush()


_COLOURS = {Status.OK: "32", Status.FAIL: "31", Status.ERROR: "33", Status.SKIPPED: "90"}


def render_table(results: Sequence[tuple[Check, Outcome]], *, colour: bool = False) -> str:
    """The report, grouped by runbook section like the runbook itself: a mark per step,
    status/reason when it is not ok, the summary, and the runbook reference."""
    lines: list[str] = []
    section = None
    for check, outcome in results:
        if check.section != section:
            section = check.section
            lines.append(("\n" if lines else "") + section)
        verdict = "" if outcome.status is Status.OK else f"{outcome.status}/{outcome.reason}  "
        mark = MARKS[outcome.status]
        if colour:
            mark = f"\033[{_COLOURS[outcome.status]}m{mark}\033[0m"
        lines.append(f"  {mark} {check.name:<24} {verdict}{outcome.summary}  [{check.runbook}]")
    return "\n".join(lines)


async def _run(
    settings: Settings,
    web_config: WebConfig | None = None,
    loader: Callable[[], Settings] | None = None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, stop, web_config, loader)
    except OSError as err:
        structlog.get_logger("quantops_exporter").error(
            "cannot_listen",
            address=settings.listen_address,
            error=str(err),
            hint="another process holds the port; set QUANTOPS_LISTEN_ADDRESS",
        )
        return EXIT_FAILED
    return EXIT_OK
