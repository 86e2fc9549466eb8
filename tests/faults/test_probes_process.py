"""Health probes against the real daemon with basic auth and TLS on (process tests: the daemon
and `quantops-exporter healthcheck` as subprocesses). Issue 13, item 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from quantops_exporter.simulator.stack import SepSimulator
from tests.conftest import clean_env
from tests.faults.test_reload_process import stack_env
from tests.process import daemon
from tests.tls import TestCA

pytestmark = pytest.mark.integration


def secured(tmp_path: Path) -> Path:
    """A web config with TLS and one basic-auth user, as SECURITY.md recommends."""
    cert = TestCA(tmp_path).issue("exporter.example")
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": str(cert.cert), "key_file": str(cert.key)},
                "basic_auth_users": {
                    "prometheus": bcrypt.hashpw(b"scrape", bcrypt.gensalt(4)).decode()
                },
            }
        )
    )
    return web


def healthcheck(env: dict[str, str], web: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, with the container's settings."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "quantops_exporter",
            "--web.config.file",
            str(web),
            "healthcheck",
            *args,
        ],
        env=clean_env() | env,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_probes_work_with_basic_auth_and_tls(sim: SepSimulator, tmp_path: Path) -> None:
    """With TLS and a user configured: the HEALTHCHECK command exits 0 (HTTPS, the daemon's
    own port), a kubelet-style GET of /-/healthy and /-/ready without credentials gets 200
    (they used to get 401, so the pod never became ready), and /metrics still needs them."""
    web = secured(tmp_path)
    async with daemon(tmp_path, stack_env(sim), "--web.config.file", str(web)) as running:
        env = stack_env(sim) | {"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{running.port}"}
        url = f"https://127.0.0.1:{running.port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:

            async def ready() -> bool:
                async with http.get(url + "/-/ready") as response:
                    return response.status == 200

            await running.until(ready, 30, "/-/ready 200 without credentials")
            async with http.get(url + "/-/healthy") as response:
                assert response.status == 200
            async with http.get(url + "/metrics") as response:
                assert response.status == 401
        done = healthcheck(env, web)
        assert done.returncode == 0, done.stderr
        done = healthcheck(env, web, "--path", "/-/ready")
        assert done.returncode == 0, done.stderr
    strict = stack_env(sim) | {"QUANTOPS_WEB_PROBES_NEED_AUTH": "true"}
    async with daemon(tmp_path, strict, "--web.config.file", str(web)) as running:
        env = strict | {"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{running.port}"}
        done = healthcheck(env, web)
        assert done.returncode == 1 and "answered 401" in done.stderr


def test_healthcheck_fails_when_nothing_listens(tmp_path: Path) -> None:
    """No daemon: exit 1 with the URL and the reason, no traceback."""
    from quantops_exporter.simulator.valkey_server import free_port

    done = healthcheck({"QUANTOPS_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}"}, secured(tmp_path))
    assert done.returncode == 1 and "https://127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr
