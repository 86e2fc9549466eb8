"""Command line: `run` (default), `check`, `check-config` and `demo`.

Exit codes: 0 ok, 1 a check failed (check) or the daemon could not start, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from quantops_exporter.app import run_daemon, run_once
from quantops_exporter.build import build
from quantops_exporter.checks.catalog import Section, section_checks
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.config import ConfigError
from quantops_exporter.gate import WAIT_FOR_OPEN_SECONDS, wait_for_green
from quantops_exporter.generation import Generation, load_generation
from quantops_exporter.log import configure_logging
from quantops_exporter.market import AssumedOpenCalendar
from quantops_exporter.report import Progress, render_table, summary_line
from quantops_exporter.simulator import fakeclock
from quantops_exporter.simulator.scenarios import DESCRIPTIONS, Scenario
from quantops_exporter.views import outcome_json

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_UNVERIFIED = 3  # `check`: nothing failed, but market-hours checks were skipped
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, like other Unix tools
SECTIONS = {section.slug: section for section in Section}  # pre-open, daily, ...


# Each subcommand: its name, its line in `--help`, and its own help's description.
COMMANDS = (
    ("run", "run the daemon (the default)", "Run every check on its schedule and serve /metrics."),
    (
        "check",
        "run every check once and print a report",
        "Run every enabled check once; exit 0 when none is fail/error, else 1.",
    ),
    (
        "check-config",
        "validate settings and print them, secrets masked",
        "Validate the settings (files and certificates included); print them.",
    ),
    (
        "healthcheck",
        "probe the running daemon's /-/healthy (for Docker HEALTHCHECK, exec probes)",
        "GET /-/healthy (or --path) of the daemon these settings describe, on loopback, over "
        "HTTPS when the web config sets TLS; exit 0 on 200, 1 otherwise.",
    ),
    (
        "demo",
        "run the daemon against a simulated SEP stack",
        "Start Valkey and a simulated SEP stack on loopback, then the daemon.",
    ),
)


def _add_file_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        default=default,
        help="read settings from this dotenv file too (e.g. the stack's .env.hotband); "
        "environment variables win over it",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="PATH",
        default=default,
        help="TLS and basic auth for every endpoint, in the Prometheus exporter-toolkit "
        "format (env QUANTOPS_WEB_CONFIG_FILE)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        default=default,
        help="where to serve /metrics (env QUANTOPS_LISTEN_ADDRESS; default :9110)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="web_enable_lifecycle",
        action="store_true",
        default=default if default is not None else False,
        help="allow POST/PUT /-/reload (env QUANTOPS_WEB_ENABLE_LIFECYCLE; SIGHUP always reloads)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="quantops-exporter",
        description="Run the SEP operations runbook as continuous Prometheus checks.",
        epilog="Settings come from environment variables; see README.md or `check-config`.",
    )
    _add_file_options(parser, None)
    # Subcommands accept them too; SUPPRESS keeps their default from erasing a value given
    # before the subcommand (`quantops-exporter --env-file F run`).
    common = argparse.ArgumentParser(add_help=False)
    _add_file_options(common, argparse.SUPPRESS)
    common.add_argument("--version", action="version", version=f"quantops-exporter {build()}")
    parser.add_argument("--version", action="version", version=f"quantops-exporter {build()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {
        name: sub.add_parser(name, parents=[common], help=summary, description=description)
        for name, summary, description in COMMANDS
    }
    check, demo = commands["check"], commands["demo"]
    commands["healthcheck"].add_argument(
        "--path", choices=["/-/healthy", "/-/ready"], default="/-/healthy", help="what to probe"
    )
    check.add_argument("--json", action="store_true", help="print a JSON array instead")
    when = check.add_mutually_exclusive_group()
    when.add_argument(
        "--assume-open",
        action="store_true",
        help="judge as if the FX market were open (a pre-open gate run before the open); "
        "without it, checks skipped because the market is closed make the exit code 3",
    )
    when.add_argument(
        "--wait",
        action="store_true",
        help="a gate for the open: wait for the FX market to open (at most "
        f"{WAIT_FOR_OPEN_SECONDS / 3600:g} h, else exit 3) and through the warm-up after it "
        "(QUANTOPS_PREOPEN_READY_WITHIN_SECONDS), running the checks again until they are "
        "green (exit 0) or the warm-up has ended (exit 1 naming what still fails); progress "
        "on stderr",
    )
    check.add_argument(
        "--section",
        choices=sorted(SECTIONS),
        help="run only one runbook section's checks (e.g. daily: the Daily Ops Snapshot)",
    )
    demo.add_argument(
        "--scenario",
        type=Scenario,
        choices=list(Scenario),
        default=Scenario.HEALTHY,
        metavar="NAME",
        help="the simulated stack's state to start in (default: healthy); one of: "
        + "; ".join(f"{s.value} ({DESCRIPTIONS[s]})" for s in Scenario),
    )
    demo.add_argument(
        "--at",
        type=_moment,
        metavar="WHEN",
        help="live at another moment: the simulated stack and the daemon on one fake clock "
        "(libfaketime, apt-get install faketime), on FX hours unless QUANTOPS_MARKET_HOURS "
        'says otherwise; ISO-8601, New York time unless it has an offset, e.g. "2026-12-25 '
        '12:00" (Christmas: closed), "2026-12-27 17:02" (the Sunday open\'s warm-up)',
    )
    demo.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X",
        help="with --at, run the clock X times as fast, the checks' timers too (default 1)",
    )
    demo.add_argument(
        "--libfaketime",
        type=Path,
        metavar="PATH",
        help="with --at, the libfaketime preload to use (default: Debian's libfaketimeMT.so.1)",
    )
    return parser


def _moment(text: str) -> datetime:
    try:
        return fakeclock.parse_moment(text)
    except fakeclock.FakeClockError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--at ")) from err


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not 0 < speed <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0, at most 1000")
    return speed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `quantops-exporter` command."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # `check-config | head`: the reader left. Python's documented way to go quietly:
        # point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"

    def load() -> Generation:
        """The configuration as the command line, environment and files give it (again on
        every reload)."""
        return load_generation(
            args.env_file,
            args.web_config_file,
            enable_lifecycle=args.web_enable_lifecycle,
            listen_address=args.listen_address,
        )

    try:
        generation = load()
    except ConfigError as err:
        print(f"quantops-exporter: {err}", file=sys.stderr)
        return EXIT_CONFIG
    settings = generation.settings
    if command == "check-config":
        return _check_config(generation)
    if command == "healthcheck":
        return _healthcheck(generation, args.path)
    if command == "check":
        configure_logging("console", "error")
        if args.assume_open:
            generation = dataclasses.replace(generation, calendar=AssumedOpenCalendar())
        return asyncio.run(
            _check(generation, as_json=args.json, section=args.section, wait=args.wait)
        )
    configure_logging(settings.log_format.value, settings.log_level.value)
    if command == "demo":
        if args.at is not None and not fakeclock.active():
            try:
                library = fakeclock.find_library(args.libfaketime)
            except fakeclock.FakeClockError as err:
                print(f"quantops-exporter demo: {err}", file=sys.stderr)
                return EXIT_CONFIG
            fakeclock.reexec(
                sys.argv[1:] if argv is None else argv,
                args.at,
                args.speed,
                library,
                market_hours_given="market_hours" in settings.model_fields_set,
            )
        from quantops_exporter.simulator.demo import run_demo

        return asyncio.run(run_demo(generation, scenario=args.scenario))
    return asyncio.run(run_daemon(generation, load))


def _healthcheck(generation: Generation, path: str) -> int:
    listen = generation.settings.listen
    host = listen.host or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    context = None
    if generation.server_tls is not None:
        # Our own port on loopback: the certificate names the public host, not 127.0.0.1.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    url = f"{'https' if context else 'http'}://{host}:{listen.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError as err:
        print(f"quantops-exporter: {url}: {err}", file=sys.stderr)
        return EXIT_FAILED
    if status != 200:
        print(f"quantops-exporter: {url} answered {status}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _check_config(generation: Generation) -> int:
    print("configuration is valid; effective settings (secrets masked):")
    for name, value in generation.settings.masked().items():
        print(f"  {name}={value}")
    return EXIT_OK


async def _check(
    generation: Generation, *, as_json: bool, section: str | None = None, wait: bool = False
) -> int:
    only = None
    if section is not None:
        only = frozenset(c.name for c in section_checks(generation.catalog, SECTIONS[section]))
    selected = [c for c in generation.enabled if only is None or c.name in only]
    if wait:
        waited = await wait_for_green(
            lambda: run_once(generation, only=only),
            generation.calendar,
            generation.thresholds.preopen_ready_within_seconds,
            lambda line: print(f"quantops-exporter check --wait: {line}", file=sys.stderr),
        )
        if waited is None:
            return EXIT_UNVERIFIED
        results = list(waited)
    else:
        progress = Progress(len(selected), enabled=sys.stderr.isatty())
        results = await run_once(generation, only=only, on_done=progress.done)
        progress.finish()
    if as_json:
        rows = [outcome_json(o) | {"runbook": c.runbook} for c, o in results]
        print(json.dumps(rows, indent=2))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(render_table(results, colour=colour))
    closed = [c.name for c, o in results if o.reason is Reason.MARKET_CLOSED]
    print(summary_line(results), file=sys.stderr if as_json else sys.stdout)
    if any(o.status in (Status.FAIL, Status.ERROR) for _c, o in results):
        return EXIT_FAILED
    if closed:  # a gate must never pass because nothing was checked
        print(
            f"not verified: {len(closed)} check(s) skipped because the FX market is closed "
            f"({', '.join(closed)}); before the open, --wait waits for it and the warm-up, "
            "--assume-open judges them as if it were open",
            file=sys.stderr,
        )
        return EXIT_UNVERIFIED
    return EXIT_OK
