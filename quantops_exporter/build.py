"""What was built: the version, and the source revision and its date when they can be known.

The revision comes from `quantops_exporter/_revision.txt` when a build wrote one (the
Dockerfile does: `git rev-parse` is not possible inside the image), else from git when running
from a checkout, else "unknown". Looked up once.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from quantops_exporter import __version__

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Build:
    """The version, revision and revision date of this code."""

    version: str
    revision: str
    date: str

    def __str__(self) -> str:
        return f"{self.version} (revision {self.revision}, {self.date})"


@functools.cache
def build() -> Build:
    """This code's build information."""
    written = _HERE / "_revision.txt"
    if written.is_file():
        revision, _, date = written.read_text().strip().partition(" ")
        return Build(__version__, revision or "unknown", date or "unknown")
    try:
        out = subprocess.run(
            ["git", "-C", str(_HERE), "log", "-1", "--format=%h %cs"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    if len(out) == 2:
        return Build(__version__, out[0], out[1])
    return Build(__version__, "unknown", "unknown")
