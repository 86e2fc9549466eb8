"""Reading the files the daemon is given, so that no file can freeze it or flood it.

    read_bytes / read_text   a regular file only (never a FIFO, a directory, a device), at most
                             `limit` bytes, in a thread of its own, within `timeout` seconds
    check_regular            the same test for a file a library opens by its path (ssl)
    off_loop                 run blocking work in a daemon thread and await it (the caller
                             bounds the wait with asyncio.timeout)

A FIFO is refused before it is opened, and opened only with O_NONBLOCK (a swap between the two
cannot block); a hung network mount is what the timeout is for. The thread left behind by a read
that did not return is a daemon thread, so it never keeps the process from exiting, and a path
whose read has not returned is refused at once until it does (one stuck thread per path at most).
FileError says what is wrong in words an operator can act on (`is a directory, not a regular
file; <the fix>`, as problems.py words a bad value); callers prefix the file's name and may give
a fix of their own (`worded`).
The threads catch every exception only to hand it to whoever waits, who raises it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")
MIB = 1024 * 1024
MAX_CONFIG_BYTES = MIB  # a web config or env file: thousands of users or settings fit in 1 MiB
MAX_PEM_BYTES = 4 * MIB  # a CA bundle (the system's is ~200 kB)
READ_TIMEOUT_SECONDS = 5.0
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_FIX = "write it to a regular file (it is read again on every reload)"
_stuck: set[Path] = set()  # paths whose read timed out and has not returned since
_stuck_lock = threading.Lock()


class FileError(Exception):
    """A file that cannot be used: missing, not a regular file, too large, not read in time.

    `what` is wrong, and `fix` (when one is known) says what to do instead."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what, self.fix = what, fix
        super().__init__(self.worded())

    def worded(self, fix: str | None = None) -> str:
        """What is wrong and the fix: `fix`, a caller's own words, instead of the generic one."""
        chosen = (fix or self.fix) if self.fix is not None else None
        return f"{self.what}; {chosen}" if chosen else self.what


def read_bytes(path: Path, *, limit: int, timeout: float = READ_TIMEOUT_SECONDS) -> bytes:
    """The content of the regular file `path` (at most `limit` bytes), read within `timeout`."""
    return _bounded(path, timeout, lambda: _read(path, limit))


def read_text(path: Path, *, limit: int, timeout: float = READ_TIMEOUT_SECONDS) -> str:
    """read_bytes, decoded as UTF-8 (FileError naming the first bad byte otherwise)."""
    data = read_bytes(path, limit=limit, timeout=timeout)
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise FileError(
            f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from None


def check_regular(path: Path, *, limit: int, timeout: float = READ_TIMEOUT_SECONDS) -> None:
    """Fail unless `path` is a regular file of at most `limit` bytes (for a library that opens
    it itself; the check is bounded, the library's own read is not)."""
    _bounded(path, timeout, lambda: os.close(_open_regular(path, limit)))


async def off_loop(work: Callable[[], _T], *, name: str = "off-loop") -> _T:
    """`work()` in a daemon thread. Bound it with asyncio.timeout: a cancelled wait leaves the
    thread to finish on its own, and it never delays the loop nor the process's exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(result: Future[_T]) -> None:
        if done.done():  # timed out or cancelled meanwhile: nobody waits
            return
        error = result.exception()
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result.result())

    def run() -> None:
        result: Future[_T] = Future()
        try:
            result.set_result(work())
        except Exception as err:  # noqa: BLE001 - handed to the awaiting task, which re-raises it
            result.set_exception(err)
        with contextlib.suppress(RuntimeError):  # the loop closed while the work ran
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await done


def _bounded(path: Path, timeout: float, work: Callable[[], _T]) -> _T:
    with _stuck_lock:
        if path in _stuck:
            raise FileError("an earlier read has not returned yet (a hung network mount?)")
    result: Future[_T] = Future()

    def run() -> None:
        try:
            result.set_result(work())
        except Exception as err:  # noqa: BLE001 - re-raised in the caller's thread
            result.set_exception(err)
        with _stuck_lock:
            _stuck.discard(path)

    threading.Thread(target=run, name=f"read {path.name}", daemon=True).start()
    try:
        return result.result(timeout)
    except FutureTimeout:
        with _stuck_lock:
            if not result.done():  # else it returned just now, and `run` has or will unmark it
                _stuck.add(path)
        raise FileError(f"not read within {timeout:g} s (a hung network mount?)") from None


def _read(path: Path, limit: int) -> bytes:
    fd = _open_regular(path, limit)
    try:
        chunks, size = [], 0
        while chunk := os.read(fd, min(256 * 1024, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew since fstat: still refused, never read past the limit
                raise FileError(f"is larger than {_size(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_regular(path: Path, limit: int) -> int:
    """An fd open on `path`, a regular file of at most `limit` bytes."""
    try:
        info = os.stat(path)
        _require_regular(info.st_mode, limit, info.st_size)  # a FIFO is never opened
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileError("no such file") from None
    except OSError as err:
        raise FileError(f"cannot read it ({err.strerror})") from None
    try:
        info = os.fstat(fd)  # what was opened, if the path was swapped after the stat
        _require_regular(info.st_mode, limit, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(mode: int, limit: int, size: int) -> None:
    for test, kind in _KINDS:
        if test(mode):
            raise FileError(f"is {kind}, not a regular file", _FIX)
    if not stat.S_ISREG(mode):
        raise FileError("is not a regular file", _FIX)
    if size > limit:
        raise FileError(f"is larger than {_size(limit)}")


def _size(limit: int) -> str:
    for unit, name in ((MIB, "MiB"), (1024, "KiB")):
        if limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit} bytes"
