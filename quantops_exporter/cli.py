"""Command line: `run` (default), `check`, `check-config`, `healthcheck` and `demo`.

Exit codes: 0 ok; 1 a check failed (`check`) or the daemon could not listen (`run`, `demo`: the
port is taken, one line says which flag to change); 2 bad configuration or flags; 3 (`check`)
nothing failed but market-hours checks were skipped. Flags are the Prometheus exporters'
(`--web.listen-address`, `--web.telemetry-path`, `--log.level`, ...) and win over the
environment; each command offers only the flags that act on it. The simulator and its clock are
imported by `demo` alone: `run` loads none of them.
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
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from quantops_exporter.app import run_daemon, run_once
from quantops_exporter.build import build
from quantops_exporter.checks.catalog import Section, section_checks
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.config import ConfigError, LogFormat, LogLevel, Settings
from quantops_exporter.gate import WAIT_FOR_OPEN_SECONDS, wait_for_green
from quantops_exporter.generation import Generation, load_generation
from quantops_exporter.log import configure_logging
from quantops_exporter.market import AssumedOpenCalendar
from quantops_exporter.report import Progress, render_table, summary_line
from quantops_exporter.views import outcome_json

if TYPE_CHECKING:
    from quantops_exporter.simulator.scenarios import Scenario

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
        "Start Valkey and a simulated SEP stack on loopback, then the daemon (on 127.0.0.1 "
        "unless --web.listen-address says otherwise).",
    ),
)
# The web flags, and the commands each acts on: a flag is offered only where it does something
# (check-config shows what `run` would use, so it takes them all).
WEB_FLAGS = ("listen_address", "telemetry_path", "web_config_file", "web_enable_lifecycle")
ACTS_ON = {
    "run": WEB_FLAGS,
    "demo": WEB_FLAGS,
    "check-config": WEB_FLAGS,
    "healthcheck": ("listen_address", "web_config_file"),
    "check": (),
}
_FLAG_NAMES = {
    "listen_address": "--web.listen-address",
    "telemetry_path": "--web.telemetry-path",
    "web_config_file": "--web.config.file",
    "web_enable_lifecycle": "--web.enable-lifecycle",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose help may end with text made when it is shown (the demo's
    scenarios: listing them needs the simulator, which only `demo` imports)."""

    more_help: Callable[[], str] | None = None

    def format_help(self) -> str:
        text = super().format_help()
        return text + "\n" + self.more_help() if self.more_help is not None else text


def _add_general_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        default=default,
        help="read settings from this dotenv file too (e.g. the stack's .env.hotband); "
        "environment variables win over it",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=[level.value for level in LogLevel],
        default=default,
        help="the lowest level logged (env QUANTOPS_LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=[fmt.value for fmt in LogFormat],
        default=default,
        help="json, logfmt or console (env QUANTOPS_LOG_FORMAT; default json)",
    )
    parser.add_argument("--version", action="version", version=f"quantops-exporter {build()}")


def _add_web_options(
    parser: argparse.ArgumentParser, default: object, flags: Sequence[str]
) -> None:
    if "web_config_file" in flags:
        parser.add_argument(
            "--web.config.file",
            dest="web_config_file",
            type=Path,
            metavar="PATH",
            default=default,
            help="TLS and basic auth for every endpoint, in the Prometheus exporter-toolkit "
            "format (env QUANTOPS_WEB_CONFIG_FILE)",
        )
    if "listen_address" in flags:
        parser.add_argument(
            "--web.listen-address",
            dest="listen_address",
            metavar="HOST:PORT",
            default=default,
            help="where to serve (env QUANTOPS_LISTEN_ADDRESS; default :9110, the demo's "
            "127.0.0.1:9110)",
        )
    if "telemetry_path" in flags:
        parser.add_argument(
            "--web.telemetry-path",
            dest="telemetry_path",
            metavar="PATH",
            default=default,
            help="the path of the metrics (env QUANTOPS_WEB_TELEMETRY_PATH; default /metrics)",
        )
    if "web_enable_lifecycle" in flags:
        parser.add_argument(
            "--web.enable-lifecycle",
            dest="web_enable_lifecycle",
            action="store_true",
            default=default if default is not None else False,
            help="allow POST/PUT /-/reload (env QUANTOPS_WEB_ENABLE_LIFECYCLE; SIGHUP always "
            "reloads)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(
        prog="quantops-exporter",
        description="Run the SEP operations runbook as continuous Prometheus checks.",
        epilog="Settings come from environment variables; see docs/configuration.md or "
        "`check-config`. Flags win over the environment.",
    )
    # Before a command: the general options, and the web flags of `run` (the default command).
    _add_general_options(parser, None)
    _add_web_options(parser, None, WEB_FLAGS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands: dict[str, _Parser] = {}
    for name, summary, description in COMMANDS:
        command = sub.add_parser(name, help=summary, description=description)
        # SUPPRESS keeps a subcommand's default from erasing a value given before it
        # (`quantops-exporter --env-file F run`).
        _add_general_options(command, argparse.SUPPRESS)
        _add_web_options(command, argparse.SUPPRESS, ACTS_ON[name])
        commands[name] = command
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
        help="run only one runbook section's checks, in its steps' order (e.g. daily: the "
        "Daily Ops Snapshot)",
    )
    demo.add_argument(
        "--scenario",
        type=_scenario,
        default="healthy",
        metavar="NAME",
        help="the simulated stack's state to start in (default: healthy; the scenarios are "
        "listed below)",
    )
    demo.more_help = _scenarios_help
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
        metavar="X",
        help="with --at, run the clock X times as fast, the checks' timers too (default 1)",
    )
    demo.add_argument(
        "--libfaketime",
        type=Path,
        metavar="PATH",
        help="with --at, the libfaketime preload to use (default: Debian's libfaketimeMT.so.1)",
    )
    parser.set_defaults(_commands=commands)
    return parser


def _scenario(text: str) -> Scenario:
    from quantops_exporter.simulator.scenarios import Scenario

    try:
        return Scenario(text.strip().lower())
    except ValueError:
        names = ", ".join(scenario.value for scenario in Scenario)
        raise argparse.ArgumentTypeError(
            f"{text} is not a scenario; choose one of: {names} (demo --help describes them)"
        ) from None


def _scenarios_help() -> str:
    from quantops_exporter.simulator.scenarios import DESCRIPTIONS

    width = max(len(scenario.value) for scenario in DESCRIPTIONS)
    lines = [f"  {s.value:<{width}}  {text}" for s, text in DESCRIPTIONS.items()]
    return "scenarios (--scenario NAME):\n" + "\n".join(lines) + "\n"


def _moment(text: str) -> datetime:
    from quantops_exporter.simulator import fakeclock

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
        raise argparse.ArgumentTypeError(f"{text}: give a number above 0, at most 1000")
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


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags, refusing those that would do nothing where they were given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    commands: dict[str, _Parser] = args._commands
    for dest, flag in _FLAG_NAMES.items():
        given = getattr(args, dest, None)
        if given not in (None, False) and dest not in ACTS_ON[command]:
            parser.error(
                f"{flag} does nothing for `{command}`: give it to run, demo or check-config"
            )
    if command == "demo" and args.at is None:
        for dest, flag in (("speed", "--speed"), ("libfaketime", "--libfaketime")):
            if getattr(args, dest) is not None:
                commands["demo"].error(
                    f"{flag} needs --at: it sets how the fake clock runs, e.g. "
                    '--at "2026-12-27 16:55" --speed 10'
                )
    return args


def _main(argv: Sequence[str] | None) -> int:
    args = _parse(argv)
    command = args.command or "run"

    def load() -> Generation:
        """The configuration as the command line, environment and files give it (again on
        every reload)."""
        return load_generation(
            args.env_file,
            getattr(args, "web_config_file", None),
            enable_lifecycle=getattr(args, "web_enable_lifecycle", False),
            listen_address=getattr(args, "listen_address", None),
            telemetry_path=getattr(args, "telemetry_path", None),
            log_level=args.log_level,
            log_format=args.log_format,
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
        # A report for people: only errors are logged, on the console, unless asked otherwise.
        configure_logging(args.log_format or "console", args.log_level or "error")
        if args.assume_open:
            generation = dataclasses.replace(generation, calendar=AssumedOpenCalendar())
        return asyncio.run(
            _check(generation, as_json=args.json, section=args.section, wait=args.wait)
        )
    if command == "demo":
        return _demo(args, argv, generation, load)
    configure_logging(settings.log_format.value, settings.log_level.value)
    return asyncio.run(run_daemon(generation, load))


def _demo(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    generation: Generation,
    load: Callable[[], Generation],
) -> int:
    from quantops_exporter.simulator import fakeclock
    from quantops_exporter.simulator.demo import run_demo

    if args.at is not None and not fakeclock.active():
        try:
            library = fakeclock.find_library(args.libfaketime)
        except fakeclock.FakeClockError as err:
            print(f"quantops-exporter demo: {err}", file=sys.stderr)
            return EXIT_CONFIG
        fakeclock.reexec(
            sys.argv[1:] if argv is None else argv,
            args.at,
            args.speed or 1.0,
            library,
            market_hours_given="market_hours" in generation.settings.model_fields_set,
        )
    scenario = _scenario(args.scenario) if isinstance(args.scenario, str) else args.scenario
    return asyncio.run(run_demo(generation, loader=load, scenario=scenario))


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
    chosen = SECTIONS[section] if section is not None else None
    if chosen is not None:
        only = frozenset(c.name for c in section_checks(generation.catalog, chosen))
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
        print(render_table(results, colour=colour, section=chosen))
    closed = [c.name for c, o in results if o.reason is Reason.MARKET_CLOSED]
    print(summary_line(results), file=sys.stderr if as_json else sys.stdout)
    if any(o.status is Status.ERROR for _c, o in results):
        note = localhost_note(generation.settings)
        if note:
            print(note, file=sys.stderr)
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


# The stack's addresses, and how a deployment names them (sep-stack-contract.md §0).
_STACK = (
    ("valkey_url", "VALKEY_URL", "redis://sep-valkey:6379/0"),
    ("sep_api_url", "SEP_API_URL", "http://sep-backend:8000"),
    ("allocator_url", "ALLOCATOR_URL", "http://sep-allocator-lite:8100"),
)


def localhost_note(settings: Settings) -> str | None:
    """Which of the stack's addresses were left to their defaults, which point at localhost,
    and how to set them; None when every one was given."""
    unset = [row for row in _STACK if row[0] not in settings.model_fields_set]
    if not unset:
        return None
    names = ", ".join(alias for _name, alias, _example in unset)
    defaults = ", ".join(f"{alias}={getattr(settings, name)}" for name, alias, _e in unset)
    examples = " ".join(f"{alias}={example}" for _name, alias, example in unset)
    return (
        f"note: {names} {'is' if len(unset) == 1 else 'are'} not set, so the checks read "
        f"localhost ({defaults}). Point them at the stack: {examples} quantops-exporter check, "
        "or read the stack's env file: quantops-exporter --env-file /opt/sep/.env.hotband check"
    )
