"""Reading the files the daemon is given: regular files only, bounded in size and in time, off
the event loop, and never a thread that keeps the process from exiting."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from quantops_exporter import files
from quantops_exporter.files import FileError, check_regular, off_loop, read_bytes, read_text

LIMIT = 1024


def _socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the file stays after the socket closes
    server.close()


ODD: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing": (lambda p: None, "no such file"),
    "directory": (Path.mkdir, "a directory, not a regular file"),
    "FIFO": (os.mkfifo, "a FIFO (named pipe), not a regular file; write it to a regular file"),
    "socket": (_socket, "a socket, not a regular file"),
    "device": (lambda p: p.symlink_to("/dev/zero"), "a character device, not a regular file"),
    "over the limit": (lambda p: p.write_bytes(b"x" * (LIMIT + 1)), "larger than 1 KiB"),
}


@pytest.mark.parametrize("case", ODD)
@pytest.mark.parametrize("read", [read_bytes, check_regular], ids=["read", "check"])
def test_only_regular_files_within_the_limit_are_read(
    tmp_path: Path, case: str, read: Callable[..., object]
) -> None:
    """Each odd file is refused in words that say what it is, without blocking (a FIFO nobody
    writes is never opened for reading) and without reading past the limit."""
    path = tmp_path / "config"
    make, words = ODD[case]
    make(path)
    with pytest.raises(FileError) as raised:
        read(path, limit=LIMIT)
    assert words in str(raised.value)
    if case == "FIFO":  # nobody is left reading it
        with pytest.raises(OSError) as no_reader:
            os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        assert no_reader.value.errno == errno.ENXIO


def test_a_regular_file_is_read_whole_up_to_the_limit(tmp_path: Path) -> None:
    """Exactly `limit` bytes pass; UTF-8 is decoded; anything else names the byte and fix."""
    path = tmp_path / "config"
    path.write_bytes("é".encode() * (LIMIT // 2))
    assert read_text(path, limit=LIMIT) == "é" * (LIMIT // 2)
    check_regular(path, limit=LIMIT)
    path.write_bytes(b"ok: 1\n# caf\xe9\n")
    with pytest.raises(FileError, match=r"not UTF-8 text \(byte 0xe9 at offset 11\); save it"):
        read_text(path, limit=LIMIT)


def test_a_read_that_does_not_return_is_refused_and_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read stuck as on a hung mount fails after its timeout; the same path is then refused
    at once, without another thread, until the stuck read returns; other paths are read."""
    path, other = tmp_path / "web.yml", tmp_path / "other.yml"
    path.write_text("a: 1\n")
    other.write_text("b: 2\n")
    release = threading.Event()
    real = files._read

    def hung(where: Path, limit: int) -> bytes:
        if where == path:
            release.wait()
        return real(where, limit)

    monkeypatch.setattr(files, "_read", hung)
    with pytest.raises(FileError, match=r"not read within 0.2 s \(a hung network mount\?\)"):
        read_bytes(path, limit=LIMIT, timeout=0.2)
    threads = threading.active_count()
    with pytest.raises(FileError, match="an earlier read has not returned yet"):
        read_bytes(path, limit=LIMIT, timeout=60)
    assert threading.active_count() == threads
    assert read_bytes(other, limit=LIMIT) == b"b: 2\n"
    release.set()
    for _ in range(600):  # the stuck thread returns and unmarks the path
        if path not in files._stuck:
            break
        threading.Event().wait(0.01)
    assert read_bytes(path, limit=LIMIT) == b"a: 1\n"


async def test_off_loop_returns_raises_and_can_be_abandoned() -> None:
    """The work's result and its exception reach the awaiting task; a wait cut by a timeout
    leaves the thread, whose late result is dropped without error."""
    assert await off_loop(lambda: threading.current_thread().name, name="reader") == "reader"

    def broken() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await off_loop(broken)
    release = threading.Event()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await off_loop(lambda: release.wait())
    release.set()
    await asyncio.sleep(0.05)  # the late result is delivered to nobody


def test_a_thread_blocked_forever_does_not_keep_the_process_from_exiting() -> None:
    """A process whose loop gave up on work that never returns exits at once (a daemon thread,
    not the default executor, which asyncio.run and the interpreter wait for)."""
    script = textwrap.dedent(
        """
        import asyncio, threading
        from quantops_exporter.files import off_loop

        async def main():
            try:
                async with asyncio.timeout(0.1):
                    await off_loop(threading.Event().wait)
            except TimeoutError:
                print("gave up")

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "gave up\n", done.stderr
