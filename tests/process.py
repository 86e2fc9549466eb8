"""The real daemon as a subprocess, for tests of what happens to the process (signals, files,
clocks, sockets): start it, scrape it, signal it, read its log."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import clean_env, patience


class Daemon:
    """A running `quantops-exporter` process; its stderr (JSON log lines) goes to a file."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process, self.port, self.log_path = process, port, log
        self.url = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log events called `name`."""
        found = []
        for line in self.log().splitlines():
            if f'"event": "{name}"' in line:
                found.append(json.loads(line))
        return found

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        """GET `path`; (status, body)."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.url + path, timeout=aiohttp.ClientTimeout(total=5), **kwargs) as r,
        ):
            return r.status, await r.text()

    async def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample on /metrics (None when absent)."""
        _status, text = await self.get("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None

    async def until(self, probe: Any, limit: float, what: str) -> Any:
        """Poll the async `probe()` until truthy; fail naming `what` (and the log's tail)."""
        try:
            async with asyncio.timeout(patience(limit)):
                while True:
                    try:
                        result = await probe()
                    except (aiohttp.ClientError, TimeoutError):
                        result = None
                    if result:
                        return result
                    if self.process.returncode is not None:
                        raise AssertionError(f"the daemon exited: {self.log()[-1500:]}")
                    await asyncio.sleep(0.2)
        except TimeoutError:
            waited = patience(limit)
            raise AssertionError(f"not within {waited}s: {what}\n{self.log()[-1500:]}") from None

    def signal(self, signum: int) -> None:
        """Send `signum` to the daemon."""
        self.process.send_signal(signum)


@asynccontextmanager
async def daemon(
    tmp_path: Path,
    env: Mapping[str, str],
    *args: str,
    prefix: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    output: int | None = None,
    log: Path | None = None,
) -> AsyncIterator[Daemon]:
    """Start `quantops-exporter [args] run` with `env` (on a free port of `host`, "" for every
    interface; reached on 127.0.0.1) and wait until it listens; SIGTERM it on exit and require
    a clean exit 0. Its stdout and stderr go to a log file, or to the file descriptor `output`
    (the caller then copies what it reads to `log`)."""
    port = free_port()
    log = log or tmp_path / f"daemon-{port}.log"
    environment = (
        clean_env()
        | {"QUANTOPS_LISTEN_ADDRESS": f"{host}:{port}", "QUANTOPS_LOG_FORMAT": "json"}
        | dict(env)
        | dict(extra_env or {})
    )
    with log.open("ab") as file:
        sink = file if output is None else output
        process = await asyncio.create_subprocess_exec(
            *prefix,
            sys.executable,
            "-m",
            "quantops_exporter",
            *args,
            "run",
            env=environment,
            stdout=sink,
            stderr=sink,
        )
    running = Daemon(process, port, log)
    try:
        await running.until(
            lambda: asyncio.sleep(0, '"event": "listening"' in running.log()), 20, "listening"
        )
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError(
                    f"no exit 20 s after SIGTERM: {running.log()[-1500:]}"
                ) from None
    assert process.returncode == 0, running.log()[-2000:]
    text = running.log()
    at = text.find("Traceback")
    assert at < 0, text[max(0, at - 500) : at + 3000]  # the traceback, not the log's tail


CONFIG_ERROR = "quantops-exporter: invalid configuration:"


def config_problems(stderr: str) -> list[str]:
    """The problem lines of a command that exited on bad configuration: stderr is the one
    prefix line, then one indented line per problem (and nothing else, no traceback)."""
    head, *lines = stderr.strip().splitlines()
    assert head == CONFIG_ERROR, stderr
    assert lines and all(line.startswith("  ") for line in lines), stderr
    return [line.strip() for line in lines]
