"""No secret in any output of the real daemon and CLI (process tests: subprocesses, their pages,
API, metrics, logs and printed output). Issue 10, item 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import clean_env
from tests.process import daemon

pytestmark = pytest.mark.integration
SECRETS = ("hunter2", "hunter3", "hunter4", "hunter5")


def secret_env() -> dict[str, str]:
    """Every place a secret can be given, pointing at nothing (so every error path runs)."""
    return {
        "VALKEY_URL": f"redis://ops:hunter2@127.0.0.1:{free_port()}/0?password=hunter3",
        "SEP_API_URL": f"http://ops:hunter4@127.0.0.1:{free_port()}",
        "ALLOCATOR_URL": f"http://ops:hunter5@127.0.0.1:{free_port()}",
        "QUANTOPS_MARKET_HOURS": "always",
        "QUANTOPS_LOG_LEVEL": "debug",
    }


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} in {where}: {text[:2000]}"


async def test_the_daemon_never_shows_a_secret(tmp_path: Path) -> None:
    """Every check fails against URLs with passwords; no page, API answer, metric or log line
    shows one."""
    async with daemon(tmp_path, secret_env()) as running:

        async def all_ran() -> bool:
            return (await running.get("/-/ready"))[0] == 200

        await running.until(all_ran, 60, "every check has run once")
        for path in ["/", "/metrics", "/api/v1/checks"] + [
            f"/api/v1/checks/{c.name}" for c in CHECKS
        ]:
            status, body = await running.get(path)
            assert status == 200, path
            assert_no_secret(path, body)
        _status, page = await running.get("/api/v1/checks/trading_mode")
        assert "ops:***@" in page  # the URL is shown, redacted
    assert_no_secret("the log", running.log())
    assert "***" in running.log()


@pytest.mark.parametrize("command", [["check-config"], ["check", "--json"], ["check"]])
def test_the_cli_never_shows_a_secret(command: list[str]) -> None:
    """check-config and check print URLs and errors about them, redacted."""
    done = subprocess.run(
        [sys.executable, "-m", "quantops_exporter", *command],
        env=clean_env() | secret_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    assert_no_secret("stdout", done.stdout)
    assert_no_secret("stderr", done.stderr)


def test_url_credentials_and_a_bearer_token_together_exit_2() -> None:
    """Both would be an Authorization header: refused at start, secrets not shown."""
    done = subprocess.run(
        [sys.executable, "-m", "quantops_exporter", "check-config"],
        env=clean_env() | secret_env() | {"API_BEARER_TOKEN": "tok-hunter6"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "SEP_API_URL carries user:password and API_BEARER_TOKEN is set" in done.stderr
    assert_no_secret("stderr", done.stderr + done.stdout)
    assert "tok-hunter6" not in done.stderr + done.stdout


def test_an_invalid_url_exits_2_naming_the_variable_not_the_secret() -> None:
    """VALKEY_URL with a port that is not a number: exit 2, the variable named, *** shown."""
    done = subprocess.run(
        [sys.executable, "-m", "quantops_exporter", "check-config"],
        env=clean_env() | {"VALKEY_URL": "redis://ops:hunter2@valkey:notaport/0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "VALKEY_URL=" in done.stderr and "port" in done.stderr
    assert_no_secret("stderr", done.stderr + done.stdout)
