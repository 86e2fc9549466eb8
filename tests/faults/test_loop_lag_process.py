"""The loop-lag probe of the real daemon (a subprocess): when something holds its event loop,
`quantops_exporter_event_loop_lag_seconds` shows how long.

What holds the loop here is real and comes from outside the process: the daemon writes its log
lines to stderr from the loop, as most daemons do, so a log reader that stops reading (a stalled
journald, a `docker logs` pipe nobody drains) fills the pipe, and the daemon's next line blocks
its loop until the reader reads again. Not SIGSTOP: that stops the whole process, the clock the
probe compares against included in what a test could mistake for the loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.simulator.stack import SepSimulator
from tests.faults.test_reload_process import stack_env
from tests.process import Daemon, daemon

pytestmark = pytest.mark.integration

F_SETPIPE_SZ = 1031  # Linux: set a pipe's capacity (rounded up to a page)
LAG = "quantops_exporter_event_loop_lag_seconds"
HOLD = 1.5  # seconds the reader stays away once the loop is seen blocked


class PipeReader:
    """The reading end of the daemon's stdout and stderr: copies what it reads to a file
    (the Daemon helpers read that file), or stops reading while paused."""

    def __init__(self, read_fd: int, log: Path) -> None:
        self._fd, self._log = read_fd, log
        os.set_blocking(read_fd, False)
        self._loop = asyncio.get_running_loop()
        self.reading = False

    def resume(self) -> None:
        """Read (again) whatever the daemon writes."""
        if not self.reading:
            self._loop.add_reader(self._fd, self._read)
            self.reading = True

    def pause(self) -> None:
        """Stop reading: the pipe fills, then the daemon's next write blocks."""
        if self.reading:
            self._loop.remove_reader(self._fd)
            self.reading = False

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the daemon exited
            self.pause()
            return
        with self._log.open("ab") as sink:
            sink.write(data)


async def lag_over(running: Daemon, seconds: float) -> float:
    """How many lag samples were above `seconds` (`seconds` must be a bucket bound)."""
    _status, text = await running.get("/metrics")
    buckets = {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{LAG}_bucket"
    }
    return buckets[float("inf")] - buckets[seconds]


async def answers(running: Daemon, within: float) -> bool:
    """Whether /-/healthy answers within `within` seconds."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(running.url + "/-/healthy", timeout=aiohttp.ClientTimeout(total=within)),
        ):
            return True
    except (TimeoutError, aiohttp.ClientError):
        return False


async def test_a_blocked_loop_shows_in_the_lag_histogram(sim: SepSimulator, tmp_path: Path) -> None:
    """The daemon's log pipe, shrunk to a page, stops being read; reloads (SIGHUP: each logs a
    line) fill it until the loop blocks on a write (/-/healthy stops answering). Once the reader
    reads again, the histogram has a new sample above a second, where it had none before, and
    the daemon serves as before."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)
    log = tmp_path / "daemon.log"
    reader = PipeReader(read_fd, log)
    reader.resume()
    try:
        async with daemon(tmp_path, stack_env(sim), output=write_fd, log=log) as running:
            os.close(write_fd)
            write_fd = -1
            await running.until(lambda: lag_over(running, 0.001), 20, "a first lag sample")
            before = await lag_over(running, 1.0)
            assert before == 0, "the loop stalled for a second before the test blocked it"

            reader.pause()
            blocked_at = None
            for _ in range(60):  # each reload logs ~1 KiB; the pipe holds 4 KiB
                running.signal(signal.SIGHUP)
                if not await answers(running, within=0.5):
                    blocked_at = time.monotonic()
                    break
            assert blocked_at is not None, "the loop never blocked on the full pipe"
            await asyncio.sleep(HOLD)
            reader.resume()

            assert await running.until(lambda: answers(running, within=5), 20, "answers again")
            after = await running.until(lambda: lag_over(running, 1.0), 20, "a lag sample > 1 s")
            assert after >= 1
            assert await lag_over(running, 5.0) == 0  # the block lasted ~2 s, not more
    finally:
        reader.pause()
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
