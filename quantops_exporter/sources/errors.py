"""Errors raised by the sources; the runner maps each class to its closed-enum reason.

    SourceError                      anything a source could not read
    ├── Unreachable                  connection refused, reset, DNS, closed pool   → unreachable
    ├── HttpStatusError              a non-2xx answer                               → http_error
    ├── BadPayload                   not JSON, not RESP, not the expected shape     → bad_payload
    │   └── TooLarge                 an HTTP body over the size cap                 → too_large
    │       └── ValueTooLarge        a Valkey value over its cap              → value_too_large
    ├── WrongType                    Valkey WRONGTYPE: the key holds another type   → wrong_type
    ├── Forbidden                    Valkey NOPERM: the ACL user may not run it     → forbidden
    └── Refused                      Valkey refused the command otherwise (LOADING, → refused
                                     BUSY, MISCONF, an unknown command)

Every error a source raises is one of the leaves above, never the bare base class; the runner
maps each to its reason (a test walks the tree), and `internal_error` means a bug.

Missing keys are not errors: readers return None and the evaluators judge it.

An error says what it could not read (`located`): the dependency, and the item of it, an HTTP
endpoint's path or a Valkey key. The readers locate what they raise; code that parses what a
reader returned locates its errors with `reading()`. Items come from the configuration and the
code's key templates and paths, never from the data read, so they can be label values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self


class SourceError(Exception):
    """Something a source could not read."""

    dependency: str = ""  # the Dependency value read ("" while not located)
    item: str = ""  # the endpoint path or Valkey key read

    def located(self, dependency: str, item: str) -> Self:
        """This error, saying what it could not read, unless it says so already (the innermost
        reader knows best)."""
        if not self.dependency:
            self.dependency, self.item = str(dependency), item
        return self


@contextmanager
def reading(dependency: str, item: str) -> Iterator[None]:
    """Locate every SourceError raised in the block at `item` of `dependency`."""
    try:
        yield
    except SourceError as err:
        err.located(dependency, item)
        raise


class Unreachable(SourceError):
    """The dependency did not answer at all."""

    # False when the request reached the server and only this endpoint failed to answer
    # (a reset mid-answer): DependencyHealth then marks that endpoint down, not the server.
    server_wide: bool = True


class HttpStatusError(SourceError):
    """The API answered with a non-2xx status."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"GET {url} answered HTTP {status}")
        self.status = status


class BadPayload(SourceError):
    """The data is not what the contract describes (not JSON, wrong shape)."""


class TooLarge(BadPayload):
    """The body exceeded the configured size cap."""


class ValueTooLarge(TooLarge):
    """A Valkey value exceeded the configured size cap."""


class Refused(SourceError):
    """Valkey refused the command for a reason other than ACL or type (LOADING, BUSY, …)."""


class WrongType(SourceError):
    """A Valkey key holds a different type than the contract says."""


class Forbidden(SourceError):
    """Valkey refused the command for this user (ACL NOPERM)."""
