"""Slowloris against the real daemon (process test: a subprocess under a 1024 fd limit, 1,100 raw
sockets that never finish their request headers, the simulated stack behind it).

Before the HTTP server limits (server.py) the daemon ran out of file descriptors: every scrape
failed, no stalled connection was ever closed, and asyncio logged tens of thousands of accept
tracebacks. Now: scrapes answer, the stalled connections are shed (evicted above the cap, the rest
at the header timeout), the log stays short and the checks keep their cadence.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import free_port
from tests.faults.test_reload_process import stack_env
from tests.process import Daemon, daemon

pytestmark = pytest.mark.integration

FLOOD = 1100
STALLED_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"  # no blank line: headers never end
HEADER_TIMEOUT = 10.0  # the default
SCRAPE_LIMIT = 3.0
CLOSED_WITHIN = 40.0
RUNS = 'runbook_check_runs_total{check="valkey_ping",status="ok"} '


@dataclass(frozen=True)
class Case:
    """The daemon's fd limits, and what it must make of them."""

    soft: int
    hard: int
    fd_limit: int  # the soft limit in force after the daemon raised it
    max_connections: int  # the derived cap: min(1000, fd limit - 512)


CASES = [
    # Nothing to raise: the cap and the header timeout alone must save it.
    pytest.param(Case(1024, 1024, 1024, 512), id="fd-limit-1024"),
    # Soft 1024 under a 4096 hard limit: raised at start-up, room for 1000 connections.
    pytest.param(Case(1024, 4096, 4096, 1000), id="fd-limit-1024-raised-to-4096"),
]


@pytest.fixture
def own_fd_limit() -> Iterator[None]:
    """Room in this process for the flood's sockets (restored afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FLOOD + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the hard fd limit {hard} leaves no room for {FLOOD} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def limited(case: Case) -> tuple[str, ...]:
    """A shell prefix that sets the daemon's fd limits, then execs it."""
    script = f'ulimit -Sn {case.soft} && ulimit -Hn {case.hard} && exec "$@"'
    return ("sh", "-c", script, "sh")


async def stall(port: int) -> socket.socket:
    """A connection that sends a request line and one header, then nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 20)
    await loop.sock_sendall(sock, STALLED_REQUEST)
    return sock


async def closed_after(sock: socket.socket, start: float) -> float:
    """Seconds from `start` until the server closes `sock` (EOF or reset)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        while await loop.sock_recv(sock, 4096):
            pass  # the server never answers a request it has not read; ignore it if it does
    return time.monotonic() - start


async def scrape(url: str) -> tuple[int, float]:
    """A fresh connection, GET /metrics: (status, seconds); status 0 when it failed."""
    began = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_LIMIT + 2)) as http,
            http.get(f"{url}/metrics") as response,
        ):
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return status, time.monotonic() - began


async def valkey_ping_runs(running: Daemon) -> float:
    """How many times valkey_ping ran ok so far."""
    _status, text = await running.get("/metrics")
    line = next(line for line in text.splitlines() if line.startswith(RUNS))
    return float(line.removeprefix(RUNS))


@dataclass(frozen=True)
class Figures:
    """What a flood did: every scrape (seconds into the flood, status, seconds taken) and when
    each stalled connection the server closed was closed (seconds into the flood, sorted)."""

    scrapes: list[tuple[float, int, float]]
    closed_at: list[float]

    @property
    def failed(self) -> list[tuple[float, int, float]]:
        """The scrapes that did not answer 200."""
        return [scrape for scrape in self.scrapes if scrape[1] != 200]

    @property
    def slowest(self) -> float:
        """The longest a scrape took."""
        return max(took for _at, _status, took in self.scrapes)

    def closed_by(self, share: float) -> float:
        """Seconds into the flood by which `share` of the stalled connections were closed."""
        count = int(share * FLOOD)
        return self.closed_at[count - 1] if len(self.closed_at) >= count else math.inf


async def flood(running: Daemon, count: int, *, scrape_for: float, share: float = 0.9) -> Figures:
    """Stall `count` connections; scrape /metrics (a fresh connection each time) every 0.2 s
    for at least `scrape_for` seconds, then until `share` are closed or CLOSED_WITHIN passes."""
    start = time.monotonic()
    sockets = await asyncio.gather(*(stall(running.port) for _ in range(count)))
    watchers = [asyncio.create_task(closed_after(sock, start)) for sock in sockets]
    scrapes: list[tuple[float, int, float]] = []
    try:
        while (elapsed := time.monotonic() - start) < CLOSED_WITHIN:
            status, took = await scrape(running.url)
            scrapes.append((elapsed, status, took))
            closed = sum(watcher.done() for watcher in watchers)
            if elapsed > scrape_for and closed >= share * count:
                break
            await asyncio.sleep(0.2)
        return Figures(scrapes, sorted(w.result() for w in watchers if w.done()))
    finally:
        for watcher in watchers:
            watcher.cancel()
        for sock in sockets:
            sock.close()


async def shed(running: Daemon) -> dict[str, float | None]:
    """quantops_exporter_http_connections_closed_total by reason."""
    name = "quantops_exporter_http_connections_closed_total"
    return {
        reason: await running.metric(name, reason=reason)
        for reason in ("header_timeout", "evicted", "refused")
    }


@pytest.mark.parametrize("case", CASES)
async def test_slowloris_is_shed_and_scrapes_keep_answering(
    case: Case, sim: SepSimulator, tmp_path: Path, own_fd_limit: None
) -> None:
    """1,100 stalled connections against a daemon limited to 1024 descriptors: every scrape
    answers 200 within 3 s, >= 90 % of the stalled connections are closed by the server within
    40 s, the log stays under 100 lines, valkey_ping keeps running and SIGTERM exits 0."""
    async with daemon(tmp_path, stack_env(sim), prefix=limited(case)) as running:
        (limits,) = running.events("http_limits")
        assert (limits["fd_limit_at_start"], limits["fd_hard_limit"]) == (case.soft, case.hard)
        assert (limits["fd_limit"], limits["max_connections"]) == (
            case.fd_limit,
            case.max_connections,
        )
        runs_before, began = await valkey_ping_runs(running), time.monotonic()

        # Scrape through the whole stall: past the header timeout.
        figures = await flood(running, FLOOD, scrape_for=HEADER_TIMEOUT + 2)

        assert not figures.failed, f"failed scrapes (at s, status, seconds): {figures.failed[:9]}"
        assert figures.slowest < SCRAPE_LIMIT, f"the slowest scrape took {figures.slowest:.2f} s"
        assert figures.closed_by(0.9) < CLOSED_WITHIN, (
            f"{len(figures.closed_at)} of {FLOOD} stalled connections closed in {CLOSED_WITHIN} s"
        )
        # Shed for the reasons meant, and not one failed accept.
        closed = await shed(running)
        assert (closed["evicted"] or 0) >= FLOOD - case.max_connections, closed
        assert (closed["header_timeout"] or 0) >= 0.5 * case.max_connections, closed
        assert closed["refused"] == 0, closed
        assert await running.metric("quantops_exporter_http_accept_errors_total") == 0
        # The checks kept their one-second cadence through it.
        runs = await valkey_ping_runs(running) - runs_before
        assert runs >= 0.5 * (time.monotonic() - began), runs
        lines = running.log().splitlines()
        assert len(lines) < 100, "\n".join(lines[-20:])
        assert running.process.returncode is None
        print(  # the figures, for `pytest -s`
            f"\n{case}: {len(figures.scrapes)} scrapes, slowest {figures.slowest:.3f} s; "
            f"{len(figures.closed_at)}/{FLOOD} closed, 90 % by {figures.closed_by(0.9):.1f} s, "
            f"all by {figures.closed_at[-1]:.1f} s; shed {closed}; {len(lines)} log lines; "
            f"valkey_ping ran {runs:.0f} times"
        )


async def test_accept_errors_are_counted_and_logged_once(
    tmp_path: Path, own_fd_limit: None
) -> None:
    """64 descriptors (cap 32) and 200 connections arriving at once: the accepts of one tick run
    the daemon out of descriptors before it can shed any. The failed accepts are counted, logged
    once (not thousands of tracebacks), accepting resumes, every stalled connection goes at the
    2-second header timeout (QUANTOPS_WEB_HEADER_TIMEOUT_SECONDS) and SIGTERM exits 0."""
    env = {"VALKEY_URL": "redis://127.0.0.1:9/0", "QUANTOPS_MARKET_HOURS": "always"}
    knobs = {"QUANTOPS_WEB_HEADER_TIMEOUT_SECONDS": "2"}
    tiny = limited(Case(64, 64, 64, 32))
    async with daemon(tmp_path, env, prefix=tiny, extra_env=knobs) as running:
        (limits,) = running.events("http_limits")
        assert (limits["max_connections"], limits["header_timeout_seconds"]) == (32, 2.0)
        figures = await flood(running, 200, scrape_for=4, share=1.0)
        errors = await running.metric("quantops_exporter_http_accept_errors_total")
        assert errors and errors > 0, "no accept failed: the test did not exhaust descriptors"
        assert len(running.events("http_accept_failed")) == 1, running.log()[-3000:]
        assert len(figures.closed_at) == 200, f"{len(figures.closed_at)} closed in 40 s"
        assert (await shed(running))["header_timeout"]
        assert len(running.log().splitlines()) < 100
        assert (await running.get("/metrics"))[0] == 200


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS to the HTTP port
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


async def test_malformed_requests_are_answered_400_and_logged_quietly(tmp_path: Path) -> None:
    """Scanners send garbage: each gets 400 and no ERROR line or traceback in the log (they
    were 'Error handling request' ERRORs); the daemon keeps serving."""
    env = {"VALKEY_URL": f"redis://127.0.0.1:{free_port()}/0", "QUANTOPS_MARKET_HOURS": "always"}
    async with daemon(tmp_path, env) as running:
        for payload in MALFORMED:
            reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            writer.write(payload)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(64), 5)
            writer.close()
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer, (payload[:20], answer)
        assert (await running.get("/-/healthy"))[0] == 200
        errors = [line for line in running.log().splitlines() if '"level": "error"' in line]
        errors = [line for line in errors if '"event": "check_status"' not in line]
        assert not errors, errors
