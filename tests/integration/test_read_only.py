"""The daemon never writes: proven with MONITOR and with a read-only ACL user on real Valkey."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio import connection as redis_connection

from quantops_exporter.app import run_once
from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.verdict import Status
from quantops_exporter.generation import open_context
from quantops_exporter.runner import run_check
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.sources.health import DependencyHealth
from tests.integration.conftest import generation_for

pytestmark = pytest.mark.integration

# docs/troubleshooting.md documents this line; the test holds it to being enough.
READ_ONLY_ACL = "on >quantops-secret ~* resetchannels -@all +@read +ping"


async def test_monitor_sees_no_write_command(sim: SepSimulator) -> None:
    """Every command the exporter sends during a full catalog run is a read (COMMAND INFO)."""
    assert sim.server is not None
    admin = aioredis.Redis.from_url(sim.server.url)
    seen: list[str] = []
    started = asyncio.Event()

    async def watch() -> None:
        async with admin.monitor() as monitor:
            started.set()
            async for event in monitor.listen():
                seen.append(event["command"])

    watcher = asyncio.create_task(watch())
    await started.wait()
    async with sim.writes_paused():  # the simulator's own writes must not muddy the record
        results = await run_once(generation_for(sim))
        await asyncio.sleep(0.2)  # MONITOR delivers asynchronously
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    assert {o.status for _c, o in results} == {Status.OK}
    names = sorted({command.split()[0].upper() for command in seen if command})
    assert {"GET", "PING", "ZREVRANGE", "PTTL"} <= set(names), names
    info = await admin.execute_command("COMMAND", "INFO", *names)
    writes = [n for n in names if "write" in info[n.lower()]["flags"]]
    await admin.aclose()
    assert writes == [], f"write commands sent: {writes}"


async def test_a_read_only_acl_user_is_enough(sim: SepSimulator) -> None:
    """Under an ACL user limited to `+@read +ping` every check still passes."""
    assert sim.server is not None
    admin = aioredis.Redis.from_url(sim.server.url)
    await admin.execute_command("ACL", "SETUSER", "quantops", *READ_ONLY_ACL.split())
    await admin.aclose()
    url = sim.server.url.replace("redis://", "redis://quantops:quantops-secret@")
    results = await run_once(generation_for(sim, valkey_url=url))
    assert {o.check: o.status for _c, o in results} == {c.name: Status.OK for c in CHECKS}


async def test_a_write_under_the_read_only_user_is_refused(sim: SepSimulator) -> None:
    """The ACL line really is read-only: a SET under it is refused (so the test above means it)."""
    assert sim.server is not None
    admin = aioredis.Redis.from_url(sim.server.url)
    await admin.execute_command("ACL", "SETUSER", "quantops", *READ_ONLY_ACL.split())
    await admin.aclose()
    user = aioredis.Redis.from_url(
        sim.server.url.replace("redis://", "redis://quantops:quantops-secret@")
    )
    with pytest.raises(redis_errors.NoPermissionError):
        await user.set("ops:kill_switch", "1")
    await user.aclose()


async def test_per_instrument_keys_take_one_round_trip(
    sim: SepSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight instruments' manifold keys (GET + PTTL each) go out in a single send."""
    sends = 0
    original = redis_connection.AbstractConnection.send_packed_command

    async def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        nonlocal sends
        sends += 1
        return await original(self, command, check_health)

    by_name = {c.name: c for c in CHECKS}
    async with open_context(generation_for(sim), DependencyHealth()) as ctx:
        await ctx.valkey.ping()  # connect first: the handshake is not the check's round trip
        for name in ("manifold_freshness", "signal_freshness"):
            monkeypatch.setattr(
                redis_connection.AbstractConnection, "send_packed_command", counting
            )
            sends = 0
            outcome = await run_check(by_name[name], ctx)
            monkeypatch.undo()
            assert outcome.status is Status.OK
            assert len(ctx.instruments) == 8
            assert sends == 1, f"{name} took {sends} round trips"
