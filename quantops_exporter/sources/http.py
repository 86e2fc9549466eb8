"""Read-only HTTP access to the stack's APIs: GET only, JSON, with a response size cap.

There is no method here that sends anything but GET, so the daemon cannot call a mutating
endpoint (POST /api/kill-switch, /api/trade/reconcile, /api/candles/fetch) by construction.
Timeouts are the runner's: a hung request is cancelled with its check. Every request is of one
endpoint, the URL's path (a configured base URL and the code's path, never wire data): its health
and the errors it raises are that endpoint's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from quantops_exporter.redact import redact
from quantops_exporter.sources.errors import (
    BadPayload,
    HttpStatusError,
    TooLarge,
    Unreachable,
    reading,
)
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.sources.payloads import decode_json
from quantops_exporter.trace import trace, waiting_on
from quantops_exporter.worker import off_loop

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
# A body larger than this is decoded in the worker thread (orjson: ~1 ms per 300 KB); a smaller
# one is decoded on the loop, quicker than the hand-over.
OFF_LOOP_BYTES = 64 * 1024


class HttpReader:
    """GET JSON or text from the stack, translating aiohttp errors into SourceErrors."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        health: DependencyHealth,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._session = session
        self._health = health
        self._max_body = max_body_bytes

    async def close(self) -> None:
        """Close the client session."""
        await self._session.close()

    async def get_json(
        self, dependency: Dependency, url: str, params: Mapping[str, str] | None = None
    ) -> object:
        """GET `url` and decode its JSON body (a large one in the worker thread)."""
        body = await self.get_bytes(dependency, url, params)
        what = f"GET {redact(url)}: the body"
        # The error is located here, on the loop: one raised in the worker comes back through
        # the await and is located like one raised inline.
        with reading(dependency, endpoint_of(url)):
            if len(body) > OFF_LOOP_BYTES:
                return await off_loop(decode_json, body, what)
            return decode_json(body, what)

    async def get_text(
        self, dependency: Dependency, url: str, params: Mapping[str, str] | None = None
    ) -> str:
        """GET `url` and decode its body as UTF-8 text."""
        body = await self.get_bytes(dependency, url, params)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadPayload(f"GET {redact(url)}: body is not UTF-8 ({err})").located(
                dependency, endpoint_of(url)
            ) from err

    async def get_bytes(
        self, dependency: Dependency, url: str, params: Mapping[str, str] | None = None
    ) -> bytes:
        """GET `url`; return its body, refusing non-2xx answers and bodies over the cap."""
        started = time.perf_counter()
        endpoint = endpoint_of(url)
        with waiting_on(f"GET {redact(url)}", dependency, endpoint), reading(dependency, endpoint):
            return await self._get_bytes(dependency, endpoint, url, params, started)

    async def _get_bytes(
        self,
        dependency: Dependency,
        endpoint: str,
        url: str,
        params: Mapping[str, str] | None,
        started: float,
    ) -> bytes:
        async with self._health.attempt(dependency, endpoint):
            try:
                async with self._session.get(url, params=params, allow_redirects=False) as response:
                    trace(
                        "http_response",
                        dependency=dependency.value,
                        url=redact(str(response.url)),
                        status=response.status,
                        seconds=round(time.perf_counter() - started, 6),
                    )
                    if not 200 <= response.status < 300:
                        raise HttpStatusError(redact(url), response.status)
                    if (response.content_length or 0) > self._max_body:
                        raise TooLarge(
                            f"GET {redact(url)}: Content-Length {response.content_length} exceeds "
                            f"the {self._max_body}-byte cap (QUANTOPS_HTTP_MAX_BODY_BYTES)"
                        )
                    return await self._read_capped(url, response)
            except aiohttp.ClientError as err:
                trace(
                    "http_error",
                    dependency=dependency.value,
                    url=redact(url),
                    error=type(err).__name__,
                )
                unreachable = Unreachable(
                    f"GET {redact(url)}: {type(err).__name__}: {redact(str(err))}"
                )
                # Refused, DNS, TLS: the server's. A reset or a cut answer: this endpoint's.
                unreachable.server_wide = isinstance(err, aiohttp.ClientConnectorError)
                raise unreachable from err

    async def _read_capped(self, url: str, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                raise TooLarge(
                    f"GET {redact(url)}: body exceeds the {self._max_body}-byte cap "
                    "(QUANTOPS_HTTP_MAX_BODY_BYTES)"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def endpoint_of(url: str) -> str:
    """The endpoint a URL asks for: its path (the query, the host and any credentials left
    out)."""
    return urlsplit(url).path or "/"
