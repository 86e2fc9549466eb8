"""Whether each dependency answers: `runbook_dependency_up`, from the latest request to each of
its endpoints (`runbook_dependency_endpoint_up`)."""

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


Endpoint = tuple[Dependency, str]  # a dependency and the path asked of it ("" for Valkey)


class DependencyHealth:
    """Up/down per endpoint of each dependency, from the outcome of the latest request to it;
    a dependency is up while any of its endpoints is.

    An endpoint is down when it did not answer usefully at all: refused, reset, hung past the
    check's timeout, or a 5xx. A 4xx or a malformed body still proves the server is there, so it
    stays up. A server that answers every endpoint but one is up, steadily: one endpoint
    answering 500 used to turn the dependency down and up by turns, request after request, and
    page as flapping beside the checks it blinded. A refused connection is the whole server's:
    every endpoint of it is down at once. Endpoints come from the configured URLs and the code's
    paths, never from what was read: they are label values.
    """

    def __init__(self) -> None:
        self._up: dict[Dependency, dict[str, bool]] = {}

    @property
    def state(self) -> Mapping[Dependency, bool]:
        """Each dependency contacted so far: up while any of its endpoints answered last time."""
        return MappingProxyType({dep: any(paths.values()) for dep, paths in self._up.items()})

    @property
    def endpoints(self) -> Mapping[Endpoint, bool]:
        """Each endpoint asked so far: whether it answered its latest request."""
        return MappingProxyType(
            {(dep, path): up for dep, paths in self._up.items() for path, up in paths.items()}
        )

    def mark(self, dependency: Dependency, up: bool, endpoint: str = "") -> None:
        """Record the result of a request to `endpoint` of `dependency`."""
        self._up.setdefault(dependency, {})[endpoint] = up

    def mark_server_down(self, dependency: Dependency, endpoint: str = "") -> None:
        """The server refused the connection: every endpoint of it is down."""
        paths = self._up.setdefault(dependency, {})
        for path in paths:
            paths[path] = False
        paths[endpoint] = False

    @asynccontextmanager
    async def attempt(self, dependency: Dependency, endpoint: str = "") -> AsyncIterator[None]:
        """Mark `endpoint` of `dependency` up or down from how the request inside the block
        ends."""
        try:
            yield
        except Unreachable as err:
            if err.server_wide:
                self.mark_server_down(dependency, endpoint)
            else:
                self.mark(dependency, False, endpoint)
            raise
        except HttpStatusError as err:
            self.mark(dependency, err.status < 500, endpoint)
            raise
        except asyncio.CancelledError:
            # The runner's timeout cancelled us mid-request: the endpoint hung.
            self.mark(dependency, False, endpoint)
            raise
        except Exception:
            self.mark(dependency, True, endpoint)
            raise
        else:
            self.mark(dependency, True, endpoint)
