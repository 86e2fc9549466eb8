"""The command line as other tools call it: exit codes, JSON rows, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantops_exporter.checks.catalog import CHECK_NAMES
from quantops_exporter.simulator.fakeclock import LIBRARIES
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import clean_env, require_libfaketime, unfaked

COMMANDS = (["run"], ["check"], ["check", "--json"], ["check-config"], ["demo"], [])


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m quantops_exporter ARGS` with a clean environment plus `env`."""
    base = unfaked(
        {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith("QUANTOPS_") and k not in ("VALKEY_URL", "SEP_API_URL")
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "quantops_exporter", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def nothing_listening() -> dict[str, str]:
    """Settings that point every dependency at closed loopback ports."""
    return {
        "VALKEY_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SEP_API_URL": f"http://127.0.0.1:{free_port()}",
        "QUANTOPS_MARKET_HOURS": "always",
    }


def test_check_json_against_nothing_exits_1_with_unreachable_rows() -> None:
    """Every check is an error/unreachable row; exit 1; no traceback anywhere."""
    result = cli("check", "--json", env=nothing_listening())
    assert result.returncode == 1, result.stderr
    rows = json.loads(result.stdout)
    assert {row["check"] for row in rows} == CHECK_NAMES
    for row in rows:
        if row["check"] == "sessions_open":  # reads only the calendar
            assert row["status"] == "ok", row
            continue
        assert (row["status"], row["reason"]) == ("error", "unreachable"), row
        assert {"summary", "runbook", "duration_seconds"} <= set(row)
    assert "Traceback" not in result.stderr + result.stdout


def test_check_table_is_readable() -> None:
    """Without --json, one line per check with a mark, status and reason."""
    result = cli("check", env=nothing_listening())
    assert result.returncode == 1
    rows = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(rows) == len(CHECK_NAMES)
    failing = [row for row in rows if "sessions_open" not in row]
    assert all(row.startswith("  ✗") and "error/unreachable" in row for row in failing)
    assert "Daily Ops Snapshot" in result.stdout.splitlines()
    assert "[Daily Ops Snapshot §1]" in result.stdout


def test_check_section_daily_runs_only_the_daily_snapshot() -> None:
    """--section daily lists exactly the Daily Ops Snapshot's checks."""
    result = cli("check", "--section", "daily", "--json", env=nothing_listening())
    names = {row["check"] for row in json.loads(result.stdout)}
    assert names == {  # the runbook's six Daily Ops Snapshot steps
        "allocator_cadence",
        "gates_eligible",
        "allocator_topk",
        "gates_blob_freshness",
        "span_integrity",
        "allocation_status",
    }
    assert cli("check", "--section", "weekly").returncode == 2  # argparse: not a section


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "default")
def test_bad_listen_address_exits_2_naming_the_variable(command: list[str]) -> None:
    """Any command refuses a bad QUANTOPS_LISTEN_ADDRESS with exit 2 and the variable's name."""
    result = cli(*command, env={"QUANTOPS_LISTEN_ADDRESS": "localhost"}, timeout=20)
    assert result.returncode == 2
    assert "QUANTOPS_LISTEN_ADDRESS=localhost: expected host:port" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_masks_secrets() -> None:
    """check-config prints the effective settings with the password masked, exit 0."""
    result = cli("check-config", env={"VALKEY_URL": "redis://ops:hunter2@valkey:6379/0"})
    assert result.returncode == 0
    assert "VALKEY_URL=redis://ops:***@valkey:6379/0" in result.stdout
    assert "hunter2" not in result.stdout


@pytest.mark.parametrize("command", ["run", "check", "check-config", "demo"])
def test_help_everywhere(command: str) -> None:
    """Each subcommand has --help mentioning --env-file."""
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "--env-file" in result.stdout


def test_port_in_use_is_a_clean_error() -> None:
    """The daemon cannot listen: a log line saying so and exit 1, not a traceback."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cli(
            "run",
            env=nothing_listening() | {"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}"},
            timeout=30,
        )
    assert result.returncode == 1
    assert "cannot_listen" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("before", [True, False], ids=["before-command", "after-command"])
def test_env_file_works_before_or_after_the_command(tmp_path, before: bool) -> None:  # type: ignore[no-untyped-def]
    """`--env-file F check-config` and `check-config --env-file F` both read the file."""
    env_file = tmp_path / ".env.hotband"
    env_file.write_text("FRESH_MAX_WS_AGE_SEC=41\n")
    args = (
        ["--env-file", str(env_file), "check-config"]
        if before
        else ["check-config", "--env-file", str(env_file)]
    )
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert "FRESH_MAX_WS_AGE_SEC=41\n" in result.stdout


def test_missing_env_file_exits_2() -> None:
    """A wrong --env-file path is a configuration error naming the path."""
    result = cli("check", "--env-file", "/nonexistent/.env.hotband")
    assert result.returncode == 2
    assert "/nonexistent/.env.hotband: no such file" in result.stderr


def test_report_colours_only_when_asked() -> None:
    """Colour is for terminals: plain text unless asked, ANSI red for a failure when asked."""
    from quantops_exporter.checks.catalog import CHECKS
    from quantops_exporter.checks.verdict import Reason, Status
    from quantops_exporter.report import render_table
    from tests.factories import outcome

    results = [
        (CHECKS[0], outcome(CHECKS[0].name, summary="fine")),
        (CHECKS[1], outcome(CHECKS[1].name, Status.FAIL, Reason.MISMATCH, "off/on")),
    ]
    assert "\033[" not in render_table(results)
    coloured = render_table(results, colour=True)
    assert "\033[31m" in coloured and "\033[32m" in coloured
    assert "fail/mismatch  off/on" in coloured


def test_piped_check_output_has_no_progress_or_colour() -> None:
    """Piped (cron, CI): no progress indicator on stderr and no escape codes."""
    result = cli("check", env=nothing_listening())
    assert "\033[" not in result.stdout and "running checks" not in result.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`check-config | head`: the pipe's reader is gone; exit quietly as SIGPIPE would."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "quantops_exporter", "check-config"],
            env=clean_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_web_listen_address_flag_wins_over_the_environment(where: str) -> None:
    """As every Prometheus exporter: --web.listen-address, the variable as fallback; before or
    after the subcommand; a bad value exits 2 naming the flag."""
    flag = ["--web.listen-address", "127.0.0.1:9944"]
    args = [*flag, "check-config"] if where == "before" else ["check-config", *flag]
    result = cli(*args, env={"QUANTOPS_LISTEN_ADDRESS": ":9110"})
    assert result.returncode == 0 and "QUANTOPS_LISTEN_ADDRESS=127.0.0.1:9944" in result.stdout
    bad = cli("check-config", "--web.listen-address", "nope")
    assert bad.returncode == 2 and "--web.listen-address nope: expected" in bad.stderr


def test_logfmt_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """QUANTOPS_LOG_FORMAT=logfmt: key=value lines, timestamp, level and event first, lists
    joined with commas, secrets redacted."""
    import logging

    import structlog

    from quantops_exporter.log import configure_logging

    configure_logging("logfmt", "info")
    try:
        structlog.get_logger("t").info("listening", checks=["a", "b"], api="http://u:pw@api:8000")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:  # leave logging as other tests expect it
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert line.startswith("timestamp=") and " level=info event=listening " in line
    assert "checks=a,b" in line and "api=http://u:***@api:8000" in line


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["check-config"], ["demo"]])
def test_version_names_the_revision_on_every_subcommand(command: list[str]) -> None:
    """As Prometheus tools do: version, source revision and its date (from git here)."""
    result = cli(*command, "--version")
    assert result.returncode == 0
    assert re.fullmatch(
        r"quantops-exporter \S+ \(revision [0-9a-f]{7,}, \d{4}-\d{2}-\d{2}\)\n", result.stdout
    ), result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--at", "yesterday"], "argument --at: yesterday is not a date and time"),
        (["--at", "2026-12-25 12:00", "--speed", "0"], "argument --speed: 0: give a number"),
        (
            ["--at", "2026-12-25 12:00", "--libfaketime", "/nowhere/libfaketimeMT.so.1"],
            "--at needs libfaketime and there is none at /nowhere/libfaketimeMT.so.1: install "
            "it (apt-get install faketime)",
        ),
    ],
)
def test_demo_at_refuses_what_it_cannot_do_naming_the_flag(args: list[str], says: str) -> None:
    """A moment that is not one, a speed of 0, no libfaketime: exit 2 before anything starts,
    the flag and the fix named."""
    result = cli("demo", *args, timeout=20)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr and "quantops-exporter demo" not in result.stdout


def test_faketime_env_keeps_real_timers_at_speed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logic: at speed 1 only the wall clock moves (the scheduler's monotonic timers stay
    real, as under NTP); faster, both run faster. The offset is from now."""
    from quantops_exporter.simulator import fakeclock
    from quantops_exporter.simulator.fakeclock import faketime_env

    monkeypatch.setattr(fakeclock, "own_skew", lambda: 0.0)  # this process on the real clock
    assert faketime_env(1_000_100.0, now=1_000_000.0) == {
        "FAKETIME": "+100",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    assert faketime_env(999_000.0, 15, now=1_000_000.0) == {"FAKETIME": "-1000 x15"}


def test_a_clock_set_from_a_faked_process_is_set_from_the_real_one() -> None:
    """Process test: a process that itself runs a day ahead under libfaketime sets a child's
    clock from the real clock (which the child's preload starts from), not from its own: the
    child reads the moment asked for, not a day past it."""
    library = require_libfaketime(LIBRARIES[0])
    code = (
        "import subprocess, sys, time\n"
        "from quantops_exporter.simulator.fakeclock import faketime_env\n"
        "target = time.time() + 3 * 86400\n"
        "env = faketime_env(target) | {'LD_PRELOAD': sys.argv[1]}\n"
        "child = subprocess.run([sys.executable, '-c', 'import time; print(time.time())'],"
        " env=env, capture_output=True, text=True, check=True)\n"
        "print(float(child.stdout) - target)\n"
    )
    ahead = unfaked(clean_env()) | {"LD_PRELOAD": str(library), "FAKETIME": "+1d"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(library)],
        env=ahead,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert abs(float(result.stdout)) < 60, result.stdout  # a day off (86,400 s) without it


def test_run_imports_no_simulator_and_no_deploy_kit() -> None:
    """Issue 21: a fresh interpreter that imports the CLI and parses `run` has loaded neither
    the simulator (nor its clock, nor fakeredis) nor the deploy kit: they are `demo`'s and the
    build's alone."""
    code = (
        "import sys\n"
        "from quantops_exporter import cli\n"
        "cli._parse(['run'])\n"
        "cli._parse(['--web.listen-address', '127.0.0.1:9999'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(("
        "'quantops_exporter.simulator', 'quantops_exporter.deploykit', 'fakeredis')))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_demo_with_an_unknown_scenario_lists_the_scenarios() -> None:
    """`demo --scenario nope`: exit 2 before anything starts, every scenario named."""
    from quantops_exporter.simulator.scenarios import Scenario

    result = cli("demo", "--scenario", "nope", timeout=20)
    assert result.returncode == 2
    assert "argument --scenario: nope is not a scenario; choose one of: healthy, " in result.stderr
    assert all(scenario.value in result.stderr for scenario in Scenario)
    assert "Scenario" not in result.stderr  # no Python class name, no repr


def test_demo_help_describes_every_scenario() -> None:
    """The list is in `demo --help`, made only when help is shown."""
    from quantops_exporter.simulator.scenarios import DESCRIPTIONS

    result = cli("demo", "--help")
    assert result.returncode == 0
    for scenario, text in DESCRIPTIONS.items():
        assert re.search(rf"^  {scenario.value} +{re.escape(text)}$", result.stdout, re.M)


@pytest.mark.parametrize("flag", [["--speed", "10"], ["--libfaketime", "/usr/lib/x.so"]])
def test_demo_clock_flags_without_at_are_an_error(flag: list[str]) -> None:
    """--speed (or --libfaketime) without --at used to be ignored silently."""
    result = cli("demo", *flag, timeout=20)
    assert result.returncode == 2
    assert f"{flag[0]} needs --at" in result.stderr
    assert "quantops-exporter demo" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--web.listen-address", ":9111"],
        ["check", "--web.config.file", "/etc/web.yml"],
        ["--web.listen-address", ":9111", "check"],
        ["--web.enable-lifecycle", "check"],
        ["healthcheck", "--web.telemetry-path", "/m"],
        ["--web.telemetry-path", "/m", "healthcheck"],
    ],
    ids=" ".join,
)
def test_web_flags_are_refused_where_they_do_nothing(args: list[str]) -> None:
    """`check` serves nothing: a web flag there is an error (exit 2), not silently ignored."""
    result = cli(*args, timeout=20)
    assert result.returncode == 2, result.stderr
    flag = next(a for a in args if a.startswith("--web."))
    assert flag in result.stderr and "Traceback" not in result.stderr


def test_check_help_offers_no_web_flags() -> None:
    """Per-subcommand flags only where they act: `check --help` has no --web.*."""
    assert "--web." not in cli("check", "--help").stdout
    assert "--web.listen-address" in cli("healthcheck", "--help").stdout
    assert "--web.telemetry-path" in cli("run", "--help").stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_and_telemetry_flags_win_over_the_environment(where: str) -> None:
    """--log.level, --log.format and --web.telemetry-path as in node_exporter: before or after
    the command, over QUANTOPS_LOG_LEVEL, QUANTOPS_LOG_FORMAT, QUANTOPS_WEB_TELEMETRY_PATH."""
    flags = ["--log.level", "debug", "--log.format", "logfmt", "--web.telemetry-path", "/m"]
    args = [*flags, "check-config"] if where == "before" else ["check-config", *flags]
    env = {
        "QUANTOPS_LOG_LEVEL": "error",
        "QUANTOPS_LOG_FORMAT": "json",
        "QUANTOPS_WEB_TELEMETRY_PATH": "/other",
    }
    result = cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    for line in ("QUANTOPS_LOG_LEVEL=debug", "QUANTOPS_LOG_FORMAT=logfmt"):
        assert f"  {line}\n" in result.stdout
    assert "  QUANTOPS_WEB_TELEMETRY_PATH=/m\n" in result.stdout
    bad = cli("check-config", "--log.level", "loud")
    assert bad.returncode == 2 and "--log.level: invalid choice" in bad.stderr
    path = cli("check-config", "--web.telemetry-path", "/-/ready")
    assert path.returncode == 2
    assert "--web.telemetry-path /-/ready: expected a path of its own" in path.stderr


def test_check_on_defaults_names_what_points_at_localhost() -> None:
    """The stack's addresses left to their defaults are named, with how to set them; one that
    was given is not."""
    env = {"VALKEY_URL": f"redis://127.0.0.1:{free_port()}/0", "QUANTOPS_MARKET_HOURS": "always"}
    env |= {"QUANTOPS_CHECKS__no_positions_diagnosis__ENABLED": "false"}
    result = cli("check", env=env | {"SEP_API_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 1
    (note,) = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert note.startswith(
        "note: ALLOCATOR_URL is not set, so the checks read localhost "
        "(ALLOCATOR_URL=http://localhost:8100). Point them at the stack: "
        "ALLOCATOR_URL=http://sep-allocator-lite:8100 quantops-exporter check"
    ), note


def test_localhost_note_lists_every_default() -> None:
    """Logic: every unset address, in the plural; nothing when all are given."""
    from quantops_exporter.cli import localhost_note
    from tests.conftest import make_settings

    note = localhost_note(make_settings())
    assert note is not None
    assert note.startswith("note: VALKEY_URL, SEP_API_URL, ALLOCATOR_URL are not set")
    given = make_settings(
        valkey_url="redis://v:6379/0", sep_api_url="http://a:8000", allocator_url="http://b:1"
    )
    assert localhost_note(given) is None


def test_check_section_daily_is_one_heading_in_step_order() -> None:
    """`check --section daily`: every row under "Daily Ops Snapshot", §1 to §6, though three of
    them belong to the Pre-Open Spin-Up by their own section."""
    result = cli("check", "--section", "daily", env=nothing_listening())
    lines = result.stdout.splitlines()
    assert lines[0] == "Daily Ops Snapshot"
    rows = [line.split()[1] for line in lines[1:] if line.startswith("  ")]
    assert rows == [
        "allocator_cadence",
        "gates_eligible",
        "allocator_topk",
        "gates_blob_freshness",
        "span_integrity",
        "allocation_status",
    ]
    assert "Pre-Open Spin-Up\n" not in result.stdout


@pytest.mark.parametrize(
    "section", ["pre-open", "daily", "post-deploy", "troubleshooting", "recovery"]
)
def test_every_section_report_is_in_its_steps_order(section: str) -> None:
    """Logic, for every section: one heading, rows ordered by their step in it (a
    precondition first, the whole procedure last)."""
    from quantops_exporter.checks.catalog import CHECKS, Section, section_checks
    from quantops_exporter.report import render_table, step_of
    from tests.factories import outcome

    chosen = next(s for s in Section if s.slug == section)
    checks = section_checks(CHECKS, chosen)
    text = render_table([(c, outcome(c.name)) for c in checks], section=chosen)
    assert text.splitlines()[0] == chosen.value
    assert sum(1 for line in text.splitlines() if not line.startswith("  ")) == 1
    steps = [step_of(c, chosen) for c in sorted(checks, key=lambda c: step_of(c, chosen))]
    assert steps == sorted(steps)
    names = [line.split()[1] for line in text.splitlines()[1:]]
    assert names == [c.name for c in sorted(checks, key=lambda c: step_of(c, chosen))]


def test_demo_on_a_busy_port_says_so_in_one_line() -> None:
    """Before anything starts: one line naming the address and the flag to change, exit 1
    (the documented cannot-listen code), no banner pointing at the other process."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cli("demo", "--web.listen-address", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"quantops-exporter demo: cannot listen on 127.0.0.1:{port}: Address already in use; "
        f"another process holds it: run with --web.listen-address 127.0.0.1:{port + 1}\n"
    )
