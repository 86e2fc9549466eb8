"""HTTP server limits: what keeps slow, stalled or too many clients from taking the daemon down.

aiohttp alone lets a connection that never finishes its request headers live for the keep-alive
timeout (an hour by default) and accepts connections until the process runs out of file
descriptors; asyncio then logs every failed accept (with a traceback, many times a tick) and
/metrics stops answering. Here:

raise_fd_limit      the soft RLIMIT_NOFILE raised to the hard limit at start-up, as Go does
connection_cap      QUANTOPS_WEB_MAX_CONNECTIONS, or one derived from the fd limit (always below it)
Connections         the protocol factory: each connection must finish its request headers within
                    the header timeout (the TLS handshake too); above the cap a new connection
                    closes the oldest one still waiting for headers (else the oldest idle one;
                    refused only when every connection is serving a request)
AcceptErrors        the loop's exception handler for failed accepts (EMFILE …): counted in
                    quantops_exporter_http_accept_errors_total, logged at most once a minute
LimitedSite         the listening socket, served by `Connections`

Nothing here imports the package: app.py passes plain values in.
"""

from __future__ import annotations

import asyncio
import errno
import math
import resource
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from prometheus_client import CollectorRegistry, Counter, Gauge

log = structlog.get_logger("quantops_exporter.server")

# File descriptors kept back from the connection cap: stdio, the loop, the listening sockets,
# the outbound pools (Valkey, the stack's HTTP APIs; two generations during a reload) and the
# sockets accepted but not yet shed: asyncio accepts up to BACKLOG per listening socket per loop
# iteration, and a socket shed above the cap closes two iterations after its accept, so a flood
# overshoots the cap by a few hundred (measured: up to ~200 at BACKLOG 128). 1000 connections are
# plenty for an exporter a few Prometheus servers scrape.
FD_RESERVE = 512
AUTO_MAX_CONNECTIONS = 1000
BACKLOG = 128
LOG_EVERY_SECONDS = 60.0
ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
CLOSE_REASONS = ("header_timeout", "evicted", "refused")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The knobs (QUANTOPS_WEB_*): seconds to finish request headers (and the TLS handshake),
    seconds an idle keep-alive connection is kept, the connection cap (0: derived)."""

    header_timeout: float = 10.0
    idle_timeout: float = 120.0
    max_connections: int = 0


@dataclass(frozen=True, slots=True)
class FdLimit:
    """RLIMIT_NOFILE: the soft limit found at start-up, the one in force, the hard limit."""

    before: int
    soft: int
    hard: int


def _finite(limit: int) -> float:
    return math.inf if limit == resource.RLIM_INFINITY else float(limit)


def raise_fd_limit() -> FdLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (Go does the same at start-up; the soft
    limit of 1024 exists for select(), which neither asyncio on Linux nor our clients use)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and _finite(soft) < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as err:
            log.warning("fd_limit_not_raised", soft=soft, hard=hard, error=str(err))
            return FdLimit(soft, soft, hard)
        return FdLimit(soft, hard, hard)
    return FdLimit(soft, soft, hard)


def connection_cap(requested: int, soft_limit: int) -> int:
    """The connection cap in force: `requested` (0: AUTO_MAX_CONNECTIONS), never closer to the
    soft fd limit than FD_RESERVE (half the limit when it is small)."""
    limit = _finite(soft_limit)
    ceiling = limit - FD_RESERVE if limit >= 2 * FD_RESERVE else limit // 2
    return max(1, int(min(requested or AUTO_MAX_CONNECTIONS, ceiling)))


@dataclass(slots=True)
class Throttle:
    """True at most once per `every` seconds; counts the occurrences it swallowed."""

    every: float = LOG_EVERY_SECONDS
    clock: Callable[[], float] = time.monotonic
    suppressed: int = 0
    _next: float = field(default=-math.inf, repr=False)

    def ready(self) -> bool:
        """Whether to log now (and restart the quiet period)."""
        now = self.clock()
        if now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self.every
        return True

    def take_suppressed(self) -> int:
        """How many were swallowed since the last time it was ready; resets the count."""
        count, self.suppressed = self.suppressed, 0
        return count


class ServerMetrics:
    """The HTTP server's self-metrics, registered once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accept_errors = Counter(
            "quantops_exporter_http_accept_errors",
            "Connections the listening socket failed to accept (EMFILE, ENFILE, ENOBUFS, ENOMEM)",
            registry=registry,
        )
        self.closed = Counter(
            "quantops_exporter_http_connections_closed",
            "Connections the server closed to protect itself: header_timeout (request headers "
            "or TLS handshake not done in time), evicted (the oldest waiting connection, to make "
            "room above the cap), refused (above the cap, every connection busy)",
            ["reason"],
            registry=registry,
        )
        self.open = Gauge(
            "quantops_exporter_http_connections",
            "Open HTTP connections (TLS handshakes in progress not included)",
            registry=registry,
        )
        self.cap = Gauge(
            "quantops_exporter_http_max_connections",
            "The cap on open HTTP connections in force",
            registry=registry,
        )
        for reason in CLOSE_REASONS:
            self.closed.labels(reason)


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, ServerMetrics] = weakref.WeakKeyDictionary()


def server_metrics(registry: CollectorRegistry) -> ServerMetrics:
    """The registry's server metrics (registered on first use: `serve` may run more than once)."""
    metrics = _METRICS.get(registry)
    if metrics is None:
        metrics = _METRICS[registry] = ServerMetrics(registry)
    return metrics


class GuardedHandler(RequestHandler):
    """aiohttp's RequestHandler with a deadline for request headers.

    The deadline is armed when the connection opens and whenever bytes of a new request arrive
    on an idle connection; it is disarmed when a request's headers are complete (aiohttp counts
    parsed messages in `_request_count`) and while a request is served. A connection still
    without complete headers at the deadline is closed. Idle keep-alive connections are closed
    by aiohttp's own keep-alive timer (the idle timeout); so is a request pipelined behind one
    in progress.
    """

    __slots__ = ("_busy", "_connections", "_deadline")

    def __init__(self, connections: Connections, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._connections = connections
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False

    @property
    def waiting_for_headers(self) -> bool:
        """Open, not serving, and its header deadline armed (new, or a request half sent)."""
        return self._deadline is not None and not self._busy

    @property
    def idle(self) -> bool:
        """Not serving a request."""
        return not self._busy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()
        self._connections.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._connections.lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self._disarm()
        elif not self._busy and self._deadline is None and self.transport is not None:
            self._arm()

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Any],
    ) -> tuple[StreamResponse, bool]:
        self._busy = True
        self._disarm()
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            self._busy = False
            self._connections.served(self)

    def shed(self) -> None:
        """Close now (the peer sees EOF)."""
        self._disarm()
        self.force_close()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._connections.limits.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._busy and self.transport is not None:
            self._connections.shed(self, "header_timeout")


class Connections:
    """The protocol factory: builds a GuardedHandler per accepted connection for aiohttp's
    `server` and keeps the open ones, oldest (or least recently served) first."""

    def __init__(
        self,
        server: web.Server,
        limits: ServerLimits,
        cap: int,
        metrics: ServerMetrics,
        **handler_kwargs: Any,
    ) -> None:
        self.limits, self.cap, self.metrics = limits, cap, metrics
        self._server = server
        self._kwargs = handler_kwargs
        self._open: dict[GuardedHandler, None] = {}
        self._shed = dict.fromkeys(CLOSE_REASONS, 0)
        self._throttle = Throttle()
        metrics.cap.set(cap)

    def __len__(self) -> int:
        return len(self._open)

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, self._server, loop=asyncio.get_running_loop(), **self._kwargs)

    def opened(self, handler: GuardedHandler) -> None:
        """Count a new connection; above the cap close the oldest one waiting for headers,
        else the oldest idle one, else this one."""
        self._open[handler] = None
        self.metrics.open.set(len(self._open))
        if len(self._open) <= self.cap:
            return
        victim = self._oldest(handler, waiting=True) or self._oldest(handler, waiting=False)
        if victim is None:
            self.shed(handler, "refused")
        else:
            self.shed(victim, "evicted")

    def _oldest(self, new: GuardedHandler, *, waiting: bool) -> GuardedHandler | None:
        """The oldest connection but `new` waiting for headers (or idle); the stalled ones are
        the oldest in a flood, so this stops early."""
        for handler in self._open:
            if handler is not new and (handler.waiting_for_headers if waiting else handler.idle):
                return handler
        return None

    def served(self, handler: GuardedHandler) -> None:
        """A request finished: the connection becomes the most recently used."""
        if handler in self._open:
            del self._open[handler]
            self._open[handler] = None

    def lost(self, handler: GuardedHandler) -> None:
        """The connection closed (either side)."""
        self._open.pop(handler, None)
        self.metrics.open.set(len(self._open))

    def shed(self, handler: GuardedHandler, reason: str) -> None:
        """Close `handler` to protect the server: count it, log at most once a minute."""
        self._open.pop(handler, None)
        self.metrics.open.set(len(self._open))
        handler.shed()
        self.metrics.closed.labels(reason).inc()
        self._shed[reason] += 1
        if self._throttle.ready():
            self._throttle.take_suppressed()
            log.warning(
                "http_connections_shed",
                **self._shed,
                open=len(self._open),
                max_connections=self.cap,
                header_timeout_seconds=self.limits.header_timeout,
                hint="clients that do not finish their requests in time, or more connections "
                "than QUANTOPS_WEB_MAX_CONNECTIONS; counted in "
                "quantops_exporter_http_connections_closed_total; logged at most once a minute",
            )
            self._shed = dict.fromkeys(CLOSE_REASONS, 0)


class AcceptErrors:
    """The event loop's exception handler while serving: a failed accept (asyncio logs each
    one itself, with a traceback, up to the backlog per tick) is counted and logged at most once
    a minute; anything else goes to the handler that was there before."""

    def __init__(
        self,
        metrics: ServerMetrics,
        connections: Connections,
        fd_limit: FdLimit,
        previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None,
    ) -> None:
        self._metrics, self._connections, self._fd_limit = metrics, connections, fd_limit
        self._previous = previous
        self._throttle = Throttle()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not is_accept_error(context):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self._metrics.accept_errors.inc()
        if self._throttle.ready():
            log.error(
                "http_accept_failed",
                error=str(context.get("exception") or context.get("message")),
                suppressed=self._throttle.take_suppressed(),
                open_connections=len(self._connections),
                max_connections=self._connections.cap,
                fd_limit=self._fd_limit.soft,
                hint="out of file descriptors (or memory): raise LimitNOFILE or lower "
                "QUANTOPS_WEB_MAX_CONNECTIONS; counted in "
                "quantops_exporter_http_accept_errors_total; logged at most once a minute",
            )


def is_accept_error(context: dict[str, Any]) -> bool:
    """Whether the loop reports a failed accept: asyncio's own message, an accept errno on a
    listening socket, or a failure in the callbacks that restart accepting after one."""
    exc = context.get("exception")
    if context.get("message") == "socket.accept() out of system resource":
        return True
    if isinstance(exc, OSError) and exc.errno in ACCEPT_ERRNOS and "socket" in context:
        return True
    handle = repr(context.get("handle", ""))
    return "_accept_connection" in handle or "_start_serving" in handle


class LimitedSite(web.BaseSite):
    """A TCP site served by `connections`; the TLS handshake is bounded by the header timeout."""

    __slots__ = ("_connections", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        connections: Connections,
        *,
        ssl_context: SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=BACKLOG)
        self._host, self._port, self._connections = host, port, connections

    @property
    def name(self) -> str:
        """The URL served."""
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        """Listen."""
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connections,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=(
                self._connections.limits.header_timeout if self._ssl_context else None
            ),
        )
