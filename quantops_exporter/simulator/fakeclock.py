"""`demo --at`: the simulated stack and the daemon on one fake clock, through libfaketime.

Both read `time.time()` (the simulator through `SepSimulator.clock`), so a process started
with libfaketime preloaded lives at another moment whole: the checks, the calendar, the
simulator's week schedule and the Valkey server the demo starts (which inherits the preload,
so its TTLs run on the same clock). `demo --at` re-executes itself that way; the preload is
Debian's `faketime` package (the MT build: the daemon and Valkey run threads).

At speed 1 only the wall clock moves, as NTP would set it, and the monotonic clock (the
scheduler's timers) stays real; faster, both run faster, or the checks would keep real time.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

from quantops_exporter.problems import quoted

NEW_YORK = ZoneInfo("America/New_York")  # the runbook's clock: a moment without a zone is there
LIBRARIES = tuple(
    Path(prefix) / "faketime" / "libfaketimeMT.so.1"
    for prefix in (
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/local/lib",
    )
)


class FakeClockError(ValueError):
    """`demo --at` cannot be done as asked; the message says what to change."""


def parse_moment(text: str) -> datetime:
    """`--at`: ISO-8601, New York time unless it carries an offset ("2026-12-25 12:00",
    "2026-12-27T17:05", "2026-12-25T17:00:00Z")."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise FakeClockError(
            f"--at {quoted(text)} is not a date and time: give ISO-8601, New York time unless it "
            'carries an offset, e.g. --at "2026-12-25 12:00" or --at 2026-12-27T17:05-05:00'
        ) from err
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=NEW_YORK)


def find_library(given: Path | None = None) -> Path:
    """The libfaketime preload: `given`, else the first of LIBRARIES that exists."""
    candidates = (given,) if given is not None else LIBRARIES
    for library in candidates:
        if library is not None and library.is_file():
            return library
    where = str(given) if given is not None else ", ".join(str(p) for p in LIBRARIES)
    raise FakeClockError(
        f"--at needs libfaketime and there is none at {where}: install it (apt-get install "
        "faketime) or name the library with --libfaketime PATH"
    )


def faketime_env(moment: float, speed: float = 1.0, now: float | None = None) -> dict[str, str]:
    """libfaketime's settings for a clock reading `moment` (epoch seconds) now, running at
    `speed` from there. `now` is this process's clock; when that is a libfaketime clock itself,
    the offset is still taken from the real one, which the child's preload starts from."""
    offset = round(moment - (time.time() if now is None else now) + own_skew())
    spec = f"+{offset}" if offset >= 0 else f"{offset}"
    if speed == 1:
        return {"FAKETIME": spec, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return {"FAKETIME": f"{spec} x{speed:g}"}


@functools.cache
def own_skew() -> float:
    """How far this process's clock is from the real one: 0, unless it runs under libfaketime
    (`date` read without the preload tells the real time)."""
    if not active():
        return 0.0
    unfaked = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    try:
        real = subprocess.run(
            ["date", "+%s.%N"], env=unfaked, capture_output=True, text=True, check=True
        ).stdout
        return time.time() - float(real)
    except (OSError, ValueError, subprocess.CalledProcessError):
        return 0.0


def active(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process runs on libfaketime's clock already (the re-executed demo, which
    keeps the flags it was given, or a user's own preload)."""
    return "FAKETIME" in environ and "faketime" in environ.get("LD_PRELOAD", "")


def reexec(
    argv: Sequence[str],
    moment: datetime,
    speed: float,
    library: Path,
    *,
    environ: Mapping[str, str] = os.environ,
    market_hours_given: bool = False,
) -> NoReturn:
    """Run `quantops-exporter argv` again, in this process, with the clock at `moment`; on FX
    hours unless the configuration chose market hours itself (the week is the point)."""
    env = dict(environ)
    preload = " ".join(p for p in (str(library), env.get("LD_PRELOAD", "")) if p)
    env |= {"LD_PRELOAD": preload} | faketime_env(moment.timestamp(), speed)
    if not market_hours_given:
        env["QUANTOPS_MARKET_HOURS"] = "fx"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "quantops_exporter", *argv], env)
