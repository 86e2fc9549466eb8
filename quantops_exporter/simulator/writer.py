"""Keep the simulated stack's keys in Valkey, the way its writers would.

An operator's change wins: a STRING key whose value is not what the simulator last wrote (or
that holds another type) is left alone until it is deleted, so `valkey-cli SET` can break a
check in the demo and `valkey-cli DEL` hands the key back.

A key written with a TTL (`Snapshot.expiring`, the `week` schedule's manifolds) is written only
when its value changes, as its writer writes it once a cycle: a frozen writer's key expires in
Valkey and is not brought back (a deleted one comes back with the writer's next cycle).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import redis.asyncio as aioredis
import structlog
from redis import exceptions as redis_errors

from quantops_exporter.simulator.state import Snapshot

log = structlog.get_logger("quantops_exporter.simulator")


class ValkeyWriter:
    """Applies snapshots to Valkey; tolerates Valkey being down."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._last_written: dict[str, str] = {}
        self._down = False
        self._lock = asyncio.Lock()

    def paused(self) -> asyncio.Lock:
        """`async with writer.paused():` holds every write back until the block ends."""
        return self._lock

    async def apply(self, make_snapshot: Callable[[], Snapshot]) -> bool:
        """Write a snapshot taken under the lock, so the latest scenario's write lands last.

        Returns False (and logs once) when Valkey is unreachable.
        """
        for attempt in (1, 2):
            try:
                async with self._lock:
                    await self._apply(make_snapshot())
                break
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as err:
                # A restarted server leaves dead pooled connections: drop them, try once more.
                await self._client.connection_pool.disconnect()
                if attempt == 2:
                    if not self._down:
                        log.warning("simulator_valkey_unreachable", error=str(err))
                    self._down = True
                    return False
        if self._down:
            log.info("simulator_valkey_back")
        self._down = False
        return True

    async def _apply(self, snap: Snapshot) -> None:
        keys = list(snap.strings)
        probe = self._client.pipeline(transaction=False)
        for key in keys:
            probe.type(key)
            probe.get(key)
        answers = await probe.execute(raise_on_error=False)
        writes = self._client.pipeline(transaction=True)
        for index, key in enumerate(keys):
            kind, current = _text(answers[2 * index]), answers[2 * index + 1]
            if self._held(key, kind, current):
                continue
            ttl = snap.expiring.get(key)
            if ttl is not None and self._last_written.get(key) == snap.strings[key]:
                continue  # this cycle is written already: let its TTL run
            writes.delete(key)
            writes.set(key, snap.strings[key], px=ttl)
            self._last_written[key] = snap.strings[key]
        for key, members in snap.zsets.items():
            writes.delete(key)
            writes.zadd(key, members)
        for key in snap.absent:
            if self._last_written.pop(key, None) is not None:
                writes.delete(key)  # only what we wrote: an operator's key is left alone
        for key, fields in snap.hashes.items():
            writes.delete(key)
            writes.hset(key, mapping=dict(fields))  # type: ignore[arg-type]
            self._last_written[key] = _OUR_HASH
        await writes.execute()

    def _held(self, key: str, kind: str, current: object) -> bool:
        """Whether an operator changed `key` since we last wrote it."""
        if kind == "none":
            return False
        ours = self._last_written.get(key)
        if kind == "hash":
            return ours != _OUR_HASH
        if kind == "string":
            return ours is not None and _text(current) != ours
        return True


_OUR_HASH = "\0hash"


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def write_forever(
    writer: ValkeyWriter,
    make_snapshot: Callable[[], Snapshot],
    stop: asyncio.Event,
    *,
    every: float = 1.0,
) -> None:
    """Apply a fresh snapshot every `every` seconds until `stop` is set.

    A stop event rather than cancellation alone: on Python 3.11 redis-py's `wait_for` can
    swallow a cancellation, which would leave this loop running forever.
    """
    while not stop.is_set():
        await writer.apply(make_snapshot)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
