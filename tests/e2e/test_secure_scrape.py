"""Real Prometheus scrapes the exporter over TLS with basic auth; without credentials it can't."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from quantops_exporter.app import build_exporter, serve
from quantops_exporter.simulator.valkey_server import free_port
from quantops_exporter.webconfig import load_web_config
from tests.conftest import make_generation
from tests.e2e.conftest import binary, spawn, stop, until
from tests.tls import TestCA

pytestmark = pytest.mark.e2e


async def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path: Path) -> None:
    """The job with tls_config + basic_auth is up; the one without credentials is down."""
    ca = TestCA(tmp_path)
    cert = ca.issue("server")
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": str(cert.cert), "key_file": str(cert.key)},
                "basic_auth_users": {
                    "prometheus": bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(4)).decode()
                },
            }
        )
    )
    port = free_port()
    generation = make_generation(
        web=load_web_config(web),
        listen_address=f"127.0.0.1:{port}",
        valkey_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    stopping = asyncio.Event()
    exporter = asyncio.create_task(serve(build_exporter(generation), stopping))
    target = [{"targets": [f"127.0.0.1:{port}"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "quantops-exporter",
                        "scheme": "https",
                        "static_configs": target,
                        "tls_config": {"ca_file": str(ca.ca.cert)},
                        "basic_auth": {"username": "prometheus", "password": "scrape-me"},
                    },
                    {
                        "job_name": "no-credentials",
                        "scheme": "https",
                        "static_configs": target,
                        "tls_config": {"ca_file": str(ca.ca.cert)},
                    },
                ],
            }
        )
    )
    prom_port = free_port()
    prometheus = await spawn(
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path / "prometheus.log",
        f"http://127.0.0.1:{prom_port}/-/ready",
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> dict[str, str] | None:
                async with http.get(
                    f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "up"}
                ) as response:
                    result = (await response.json())["data"]["result"]
                jobs = {r["metric"]["job"]: r["value"][1] for r in result}
                return jobs if len(jobs) == 2 else None

            jobs = await until(up, 30, "both jobs scraped once")
            assert jobs == {"quantops-exporter": "1", "no-credentials": "0"}
    finally:
        await stop(prometheus)
        stopping.set()
        await exporter
