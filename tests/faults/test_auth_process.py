"""Basic authentication of the real daemon at its edges (process tests: a subprocess, real
signals, real files, real clients). Issue 20: a reload that would open the endpoints, files that
block or flood, passwords past bcrypt's 72 bytes, proven credentials across reloads."""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import free_port
from tests.conftest import clean_env
from tests.faults.test_reload_process import RELOADED, basic, ping_keeps_running, stack_env
from tests.process import Daemon, config_problems, daemon

pytestmark = pytest.mark.integration
USER, PASSWORD = "prometheus", "scrape-me"
GOOD = basic(USER, PASSWORD)
MIB = 1024 * 1024


def users_file(path: Path, cost: int = 4, **users: str) -> None:
    """Write a web config with these users (name=password), hashed at `cost`."""
    hashes = {
        name: bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
        for name, password in users.items()
    }
    path.write_text(yaml.safe_dump({"basic_auth_users": hashes}))


def offline_env() -> dict[str, str]:
    """A stack nobody runs: authentication needs none, the checks just record errors."""
    nowhere = f"127.0.0.1:{free_port()}"
    return {
        "VALKEY_URL": f"redis://{nowhere}/0",
        "SEP_API_URL": f"http://{nowhere}",
        "ALLOCATOR_URL": f"http://{nowhere}",
        "QUANTOPS_MARKET_HOURS": "always",
    }


def clear(path: Path) -> None:
    """Remove whatever is at `path`: a file, a FIFO, a link, a directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# Files no daemon can read as configuration, for any file it is given: what to put at the path,
# and the words the refusal must say.
UNREADABLE: dict[str, tuple[Callable[[Path], object], str]] = {
    "FIFO": (os.mkfifo, "a FIFO (named pipe), not a regular file"),
    "directory": (Path.mkdir, "a directory, not a regular file"),
    "device": (lambda p: p.symlink_to("/dev/zero"), "a character device, not a regular file"),
    "huge": (lambda p: p.write_bytes(b"#" * (2 * MIB)), "larger than "),
    "non-UTF-8": (lambda p: p.write_bytes(b"# caf\xe9\n"), "not UTF-8 text"),
    "missing": (lambda p: None, "no such file"),
}
# Web configs that read well but would leave /metrics open.
OPENING: dict[str, tuple[Callable[[Path], object], str]] = {
    "empty": (lambda p: p.write_bytes(b""), "the file sets nothing"),
    "comments only": (lambda p: p.write_text("# being rewritten\n"), "the file sets nothing"),
    "an empty mapping": (lambda p: p.write_text("{}\n"), "the file sets nothing"),
    "users left out": (
        lambda p: p.write_text("http_server_config: {headers: {X-Frame-Options: DENY}}\n"),
        "the file leaves out what it had",
    ),
}


async def refusals(running: Daemon, count: int) -> dict[str, object]:
    """Wait for the `count`th config_reload_failed; return it."""

    async def seen() -> bool:
        return len(running.events("config_reload_failed")) >= count

    await running.until(seen, 20, f"{count} refused reloads")
    return running.events("config_reload_failed")[count - 1]


async def status(running: Daemon, path: str, headers: Mapping[str, str] | None = None) -> int:
    """The status of GET `path`."""
    return (await running.get(path, headers=dict(headers or {})))[0]


async def test_a_reload_that_would_open_the_endpoints_is_refused(tmp_path: Path) -> None:
    """With one user: a web config emptied, left with comments or `{}`, or without its users, and
    a web config no longer given at all, are each a refused reload (metric 0, the log names the
    file and the fix); /metrics stays 401 without credentials and 200 with them. Writing
    `basic_auth_users: {}` opens it, and `exposed_without_tls_or_auth` is logged on each reload
    that leaves it open."""
    web, env_file = tmp_path / "web.yml", tmp_path / ".env"
    users_file(web, **{USER: PASSWORD})
    env_file.write_text(f"QUANTOPS_WEB_CONFIG_FILE={web}\n")
    async with daemon(tmp_path, offline_env(), "--env-file", str(env_file), host="") as running:
        assert await status(running, "/metrics") == 401
        for n, (case, (make, reason)) in enumerate(OPENING.items(), 1):
            clear(web)
            make(web)
            running.signal(signal.SIGHUP)
            failed = await refusals(running, n)
            error = str(failed["error"])
            assert str(web) in error and reason in error and "basic_auth_users: {}" in error, case
            assert await status(running, "/metrics") == 401, case
            await running.until(
                lambda: _shows(running, f"\n{RELOADED} 0.0", GOOD), 20, "the reload metric at 0"
            )
        users_file(web, **{USER: PASSWORD})
        env_file.write_text("QUANTOPS_LOG_LEVEL=info\n")  # QUANTOPS_WEB_CONFIG_FILE left out
        running.signal(signal.SIGHUP)
        failed = await refusals(running, len(OPENING) + 1)
        assert "no web config is given any more" in str(failed["error"])
        assert await status(running, "/metrics") == 401

        env_file.write_text(f"QUANTOPS_WEB_CONFIG_FILE={web}\n")
        web.write_text("basic_auth_users: {}\n")  # said explicitly: open on purpose
        for reloads in (1, 2):
            running.signal(signal.SIGHUP)
            await running.until(
                lambda n=reloads: asyncio.sleep(0, len(running.events("config_reloaded")) >= n),
                20,
                f"reload {reloads}",
            )
            assert await status(running, "/metrics") == 200
            assert len(running.events("exposed_without_tls_or_auth")) == reloads
        await running.until(
            lambda: _shows(running, f"\n{RELOADED} 1.0", {}), 20, "the reload metric at 1"
        )
        users_file(web, **{USER: PASSWORD})
        running.signal(signal.SIGHUP)
        await running.until(lambda: _is(running, "/metrics", 401), 20, "authentication back")
        assert len(running.events("exposed_without_tls_or_auth")) == 2


async def _shows(running: Daemon, text: str, headers: Mapping[str, str]) -> bool:
    return text in (await running.get("/metrics", headers=dict(headers)))[1]


async def _is(running: Daemon, path: str, expected: int) -> bool:
    return await status(running, path) == expected


def _token_file(tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    token = tmp_path / "token"
    token.write_text("api-token\n")
    return token, [], {"API_BEARER_TOKEN_FILE": str(token)}


def _env_file(tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    env_file = tmp_path / ".env"
    env_file.write_text("QUANTOPS_LOG_LEVEL=info\n")
    return env_file, ["--env-file", str(env_file)], {}


def _web_config(tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    web = tmp_path / "web.yml"
    users_file(web, **{USER: PASSWORD})
    return web, ["--web.config.file", str(web)], {}


@pytest.mark.parametrize(
    "given", [_web_config, _env_file, _token_file], ids=["web config", "env file", "token file"]
)
async def test_a_file_that_cannot_be_read_is_a_refused_reload_and_never_stalls_the_daemon(
    sim: SepSimulator,
    tmp_path: Path,
    given: Callable[[Path], tuple[Path, list[str], dict[str, str]]],
) -> None:
    """Each file the daemon reads, replaced by a FIFO nobody writes, a directory, /dev/zero, a
    2 MiB file, non-UTF-8 bytes or nothing, then SIGHUP: /-/healthy answers 200 within 2 s all
    along, the reload is refused naming the file and what it is, nobody is left reading the
    FIFO, the checks keep their cadence, and SIGTERM still exits 0 at once."""
    path, args, env = given(tmp_path)
    async with daemon(tmp_path, stack_env(sim) | env, *args) as running:
        await running.until(lambda: _is(running, "/-/healthy", 200), 20, "healthy")
        for n, (case, (make, reason)) in enumerate(UNREADABLE.items(), 1):
            clear(path)
            make(path)
            running.signal(signal.SIGHUP)
            for _ in range(5):  # the reload reads the file meanwhile
                started = time.monotonic()
                assert await status(running, "/-/healthy") == 200, case
                assert time.monotonic() - started < 2, case
                await asyncio.sleep(0.1)
            failed = await refusals(running, n)
            error = str(failed["error"])
            assert str(path) in error and reason in error, (case, error)
            if case == "FIFO":  # no reader holds it open: opening it to write finds none
                with pytest.raises(OSError) as raised:
                    os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                assert raised.value.errno == errno.ENXIO
        await ping_keeps_running(running, GOOD)
        clear(path)
        os.mkfifo(path)  # and left there for SIGTERM
        running.signal(signal.SIGHUP)
        await refusals(running, len(UNREADABLE) + 1)
    # daemon() has required exit 0 within 20 s of SIGTERM, and no traceback


async def get_from(source: str, url: str, headers: Mapping[str, str]) -> tuple[int, str]:
    """GET `url` from the local address `source` (each 127.0.0.x is a client of its own)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.get(url, headers=dict(headers), timeout=aiohttp.ClientTimeout(total=180)) as r,
    ):
        return r.status, await r.text()


def raw_basic(user: bytes, password: bytes) -> dict[str, str]:
    """An Authorization header from raw bytes (which need not be UTF-8)."""
    return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}


async def test_long_and_odd_passwords_are_401_then_429_and_never_500(tmp_path: Path) -> None:
    """Seven requests with a 73-byte password get 401 five times, then 429, from the same
    address; so do an unknown user with one, 1,000 bytes, 80 bytes of UTF-8, bytes that are not
    UTF-8 and a header that is not base64: never 500, no traceback, no ERROR line. Only the
    first 72 bytes count, as in exporter-toolkit: a 72-byte password gets in, with or without
    more bytes after it, and so does the scheme written `basic`."""
    web, long_password = tmp_path / "web.yml", "L" * 72
    users_file(web, **{USER: PASSWORD, "long": long_password})
    cases = {
        "73 bytes, known user": basic(USER, "x" * 73),
        "73 bytes, unknown user": basic("nobody", "x" * 73),
        "1,000 bytes": basic(USER, "y" * 1000),
        "80 bytes of UTF-8": basic(USER, "é" * 40),
        "not UTF-8": raw_basic(USER.encode(), b"\xff\xfe" * 40),
        "not base64": {"Authorization": "Basic café"},
    }
    async with daemon(tmp_path, offline_env(), "--web.config.file", str(web)) as running:
        for n, (case, header) in enumerate(cases.items()):
            source = f"127.0.0.{10 + n}"
            statuses = [
                (await get_from(source, running.url + "/metrics", header))[0] for _ in range(7)
            ]
            assert statuses == [401] * 5 + [429] * 2, (case, statuses)
        for case, header in {
            "right password": GOOD,
            "scheme in lower case": {
                "Authorization": GOOD["Authorization"].replace("Basic", "basic")
            },
            "72 bytes": basic("long", long_password),
            "72 bytes and more": basic("long", long_password + "ignored"),
        }.items():
            assert (await get_from("127.0.0.3", running.url + "/metrics", header))[0] == 200, case
        log = running.log()
        assert "Error handling request" not in log and '"level": "error"' not in log, log[-3000:]


async def test_credentials_proven_before_a_reload_get_in_after_it_despite_others_failures(
    tmp_path: Path,
) -> None:
    """Credentials that got 200 before a reload get 200 after it although six wrong passwords
    came from the same address in between (the wrong ones get 429), and while wrong passwords
    from twenty addresses fill the password-check queue; a user whose hash the reload changed
    is no longer proven and is throttled like anyone at that address."""
    web = tmp_path / "web.yml"
    users_file(web, **{USER: PASSWORD, "alice": "alice-old"})
    async with daemon(tmp_path, offline_env(), "--web.config.file", str(web)) as running:
        assert await status(running, "/metrics", GOOD) == 200
        assert await status(running, "/metrics", basic("alice", "alice-old")) == 200
        wrong = [await status(running, "/metrics", basic(USER, "guess")) for _ in range(6)]
        assert wrong == [401] * 5 + [429]
        prometheus = yaml.safe_load(web.read_text())["basic_auth_users"][USER]
        # ~0.12 s a check (unloaded): the queue of 32 fills before two threads drain it, and
        # drains in ~2 s, which a machine at load 12 stretches past 30 s
        slow_alice = bcrypt.hashpw(b"alice-new", bcrypt.gensalt(11)).decode()
        web.write_text(
            yaml.safe_dump({"basic_auth_users": {USER: prometheus, "alice": slow_alice}})
        )
        running.signal(signal.SIGHUP)
        await running.until(
            lambda: asyncio.sleep(0, bool(running.events("config_reloaded"))), 20, "reloaded"
        )
        assert await status(running, "/metrics", GOOD) == 200
        assert await status(running, "/metrics", basic(USER, "guess")) == 429
        assert await status(running, "/metrics", basic("alice", "alice-old")) == 429

        flood = [
            get_from(f"127.0.1.{a}", running.url + "/metrics", basic("alice", f"guess{k}"))
            for a in range(1, 21)
            for k in range(3)
        ]
        scrapes = [get_from("127.0.0.1", running.url + "/metrics", GOOD) for _ in range(10)]
        answers = await asyncio.gather(*flood, *scrapes)
        assert [s for s, _ in answers[len(flood) :]] == [200] * 10
        busy = [text for s, text in answers[: len(flood)] if s == 429]
        assert any("too many password checks" in text for text in busy), answers[:5]
        assert {s for s, _ in answers[: len(flood)]} <= {401, 429}


@pytest.mark.parametrize("case", UNREADABLE)
def test_a_web_config_that_cannot_be_read_stops_start_up_in_one_line(
    tmp_path: Path, case: str
) -> None:
    """At start-up (`run`; `check-config` alike) the same files exit 2 with one problem line
    under the one prefix, naming the file and what it is, at once: a web config given as a
    pipe, `<(…)`, is refused too."""
    web = tmp_path / "web.yml"
    make, reason = UNREADABLE[case]
    make(web)
    for command in ("run", "check-config"):
        done = subprocess.run(
            [sys.executable, "-m", "quantops_exporter", "--web.config.file", str(web), command],
            env=clean_env() | offline_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (command, done.stderr)
        (line,) = config_problems(done.stderr)
        assert str(web) in line and reason in line and "Traceback" not in line, (command, line)
