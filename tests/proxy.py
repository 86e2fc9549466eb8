"""A TCP proxy for tests: TLS in front of a plain server, and injected latency or resets."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class Faults:
    """What the proxy does to traffic right now (the test may change it at any time)."""

    delay: float = 0.0
    reset_requests: bool = False


@contextlib.asynccontextmanager
async def tcp_proxy(
    upstream_port: int, faults: Faults | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Proxy a loopback port to 127.0.0.1:upstream_port; yield the proxy's port."""
    faults = faults or Faults()
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, requests: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if requests and faults.reset_requests:
                    writer.transport.abort()  # the request never reaches the server
                    return
                if faults.delay:
                    await asyncio.sleep(faults.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        for args in ((client_r, server_w, True), (server_r, client_w, False)):
            task = asyncio.create_task(pipe(*args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
