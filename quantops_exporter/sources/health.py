"""Whether each dependency answered its most recent request: `runbook_dependency_up`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from enum import StrEnum
from types import MappingProxyType

from quantops_exporter.sources.errors import HttpStatusError, Unreachable


class Dependency(StrEnum):
    """Systems the checks read (the `dependency` label)."""

    VALKEY = "valkey"
    API = "api"
    ALLOCATOR = "allocator"
    STACK_METRICS = "stack_metrics"


class DependencyHealth:
    """Up/down per dependency, from the outcome of the latest request to it.

    Down means it did not answer usefully at all: refused, reset, hung past the check's timeout,
    or a 5xx. A 4xx or a malformed body still proves the server is there, so it stays up.
    """

    def __init__(self) -> None:
        self._up: dict[Dependency, bool] = {}

    @property
    def state(self) -> Mapping[Dependency, bool]:
        """A read-only view of the latest known state (absent until first contact)."""
        return MappingProxyType(self._up)

    def mark(self, dependency: Dependency, up: bool) -> None:
        """Record the result of a request to `dependency`."""
        self._up[dependency] = up

    @asynccontextmanager
    async def attempt(self, dependency: Dependency) -> AsyncIterator[None]:
        """Mark `dependency` up or down from how the request inside the block ends."""
        try:
            yield
        except Unreachable:
            self.mark(dependency, False)
            raise
        except HttpStatusError as err:
            self.mark(dependency, err.status < 500)
            raise
        except asyncio.CancelledError:
            # The runner's timeout cancelled us mid-request: the dependency hung.
            self.mark(dependency, False)
            raise
        except Exception:
            self.mark(dependency, True)
            raise
        else:
            self.mark(dependency, True)
