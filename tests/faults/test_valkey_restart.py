"""A Valkey restart under concurrent checks (a real server, stopped and started on its port):
pooled connections left over from before must not read as an outage. Issue 13, item 7."""

from __future__ import annotations

import asyncio

import pytest

from quantops_exporter.simulator.valkey_server import ValkeyServer
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.sources.valkey import ValkeyReader, connect

pytestmark = pytest.mark.integration
BURST = 6


async def test_stale_pooled_connections_after_a_restart_are_not_an_outage(
    own_valkey_server: ValkeyServer,
) -> None:
    """Six concurrent reads fill the pool; Valkey restarts; the next bursts all succeed (each
    read that meets a connection the restart closed is retried once on a fresh one) and Valkey
    is never marked down. Reproduced before: 5 of 6 'Connection closed by server'."""
    health = DependencyHealth()
    reader = ValkeyReader(connect(own_valkey_server.url, timeout=2), health)
    try:
        await asyncio.gather(*(reader.get_many(["a", "b"]) for _ in range(BURST)))
        own_valkey_server.stop()
        own_valkey_server.start()
        marks: list[bool] = []
        for _ in range(3):
            results = await asyncio.gather(
                *(reader.get_many(["a", "b"]) for _ in range(BURST)),
                *(reader.ping() for _ in range(BURST)),
                return_exceptions=True,
            )
            assert not [r for r in results if isinstance(r, BaseException)], results
            marks.append(health.state[Dependency.VALKEY])
        assert marks == [True, True, True]
    finally:
        await reader.close()


async def test_a_server_that_stays_down_is_still_unreachable(
    own_valkey_server: ValkeyServer,
) -> None:
    """The one retry does not hide an outage: a stopped server is unreachable, marked down."""
    from quantops_exporter.sources import errors

    health = DependencyHealth()
    reader = ValkeyReader(connect(own_valkey_server.url, timeout=2), health)
    try:
        await reader.ping()
        own_valkey_server.stop()
        with pytest.raises(errors.Unreachable):
            await reader.get_many(["a"])
        assert health.state[Dependency.VALKEY] is False
    finally:
        await reader.close()
        own_valkey_server.start()
