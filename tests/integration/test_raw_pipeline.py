"""The raw-RESP pipeline (sources/resp.py) against a real Valkey: it is the path taken, it reads
every key state exactly as redis-py's pipeline does, and a read cut short never leaves a
connection whose pending replies the next read would take for its own."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis

from quantops_exporter.simulator.valkey_server import ValkeyServer
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.sources.valkey import KeyRead, ValkeyReader, connect

pytestmark = pytest.mark.integration
CAP = 64


async def _key_space(url: str) -> tuple[list[str], list[str]]:
    """Strings and sorted sets in every state a check can meet; (string keys, zset keys)."""
    writer = aioredis.Redis.from_url(url)
    await writer.flushall()
    await writer.set("s:json", json.dumps({"ts": 1_764_000_000.5}))
    await writer.set("s:ttl", json.dumps({"price": 1.1}), ex=300)
    await writer.set("s:empty", "")
    await writer.set("s:binary", b"\xff\x00\r\n*3\r\n")  # RESP-looking bytes inside a value
    await writer.set("s:at_cap", "x" * CAP)
    await writer.set("s:unicode", "é" * 10)
    await writer.hset("s:hash", mapping={"ts": "1"})
    await writer.rpush("s:list", "a")
    await writer.zadd("z:members", {"sep:signal:EUR_USD:1764000000000000000": 1_764_000_000})
    await writer.zadd("z:float", {"m": 1.5e9, "older": 1})
    await writer.zadd("z:inf", {"m": float("inf")})
    await writer.set("z:string", "not a zset")
    await writer.aclose()
    strings = ["s:json", "s:ttl", "s:empty", "s:binary", "s:at_cap", "s:unicode"]
    strings += ["s:hash", "s:list", "s:missing", "z:members"]
    zsets = ["z:members", "z:float", "z:inf", "z:string", "z:missing", "s:hash"]
    return strings, zsets


def _comparable(reads: list[KeyRead]) -> list[tuple[object, ...]]:
    # The TTL counts down between the two reads; that it is there is what must agree.
    return [(r.key, r.value, r.wrong_type, r.pttl_ms is None) for r in reads]


async def test_raw_path_is_taken_and_agrees_with_redis_py(own_valkey_server: ValkeyServer) -> None:
    strings, zsets = await _key_space(own_valkey_server.url)
    raw = ValkeyReader(
        connect(own_valkey_server.url, timeout=2), DependencyHealth(), max_value_bytes=CAP
    )
    # RESP3 asked for in the URL: the raw path steps aside and redis-py's pipeline reads.
    slow = ValkeyReader(
        connect(f"{own_valkey_server.url}?protocol=3", timeout=2),
        DependencyHealth(),
        max_value_bytes=CAP,
    )
    try:
        for reader in (raw, slow):
            got_strings = await reader.get_many(strings)
            got_zsets = await reader.newest_members(zsets)
            got_hash = await reader.hgetall("s:hash")
            if reader is raw:
                expected = (got_strings, got_zsets, got_hash)
        assert _comparable(got_strings) == _comparable(expected[0])
        assert got_zsets == expected[1]
        assert got_hash == expected[2]
        assert raw.raw_pipelines == 3 and slow.raw_pipelines == 0
    finally:
        await raw.close()
        await slow.close()

    by_key = {r.key: r for r in expected[0]}
    assert by_key["s:json"].value == b'{"ts": 1764000000.5}'
    assert by_key["s:ttl"].pttl_ms is not None and 0 < by_key["s:ttl"].pttl_ms <= 300_000
    assert by_key["s:empty"].value == b"" and not by_key["s:empty"].missing
    assert by_key["s:binary"].value == b"\xff\x00\r\n*3\r\n"
    assert by_key["s:missing"].missing
    assert by_key["s:hash"].wrong_type and by_key["z:members"].wrong_type
    newest = {r.key: r for r in expected[1]}
    assert newest["z:members"].value == (b"sep:signal:EUR_USD:1764000000000000000", 1.764e9)
    assert newest["z:float"].value == (b"m", 1.5e9)
    assert newest["z:inf"].value == (b"m", float("inf"))
    assert newest["z:string"].wrong_type and newest["s:hash"].wrong_type
    assert newest["z:missing"].missing
    assert expected[2].value == {b"ts": b"1"}


async def test_a_read_cut_short_never_poisons_the_next(own_valkey_server: ValkeyServer) -> None:
    """Cancel reads of 5,000 keys at every stage (before the send, mid-answer): each later read
    gets its own replies, never the leftovers of an abandoned one."""
    writer = aioredis.Redis.from_url(own_valkey_server.url)
    await writer.flushall()
    keys = [f"k:{i}" for i in range(5000)]
    await writer.mset({key: key for key in keys})
    await writer.aclose()
    reader = ValkeyReader(connect(own_valkey_server.url, timeout=2), DependencyHealth())
    try:
        # The cuts are spread over the time one whole read takes on this machine now (the
        # fastest of three), so they land mid-answer on a fast machine and on a busy one alike.
        whole = []
        for _ in range(3):
            started = time.perf_counter()
            await reader.get_many(keys)
            whole.append(time.perf_counter() - started)
        cut = 0
        for step in range(40):
            delay = min(whole) * step / 40
            try:
                await asyncio.wait_for(reader.get_many(keys), delay)
            except TimeoutError:
                cut += 1
            probe = [keys[step], keys[-1 - step]]
            assert [r.value for r in await reader.get_many(probe)] == [k.encode() for k in probe]
        assert cut >= 5  # the cancellations did land (else this proves nothing)
    finally:
        await reader.close()
