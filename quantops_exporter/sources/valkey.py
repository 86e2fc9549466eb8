"""Read-only access to Valkey: the only seam between the checks and the key space.

Only read commands exist here (PING, GETRANGE, PTTL, ZREVRANGE, HGETALL), so a Valkey ACL user
limited to `+@read +ping` is enough. Per-instrument reads go out as one pipeline: one round
trip per check run, whatever the number of instruments.

A string value is read with `GETRANGE key 0 <cap>`, never `GET`: at most one byte more than the
cap crosses the wire, so a 48 MB value where a manifold should be costs 1 MiB, and is refused
(ValueTooLarge) instead of parsed. `PTTL` in the same pipeline tells a missing key (-2) from an
empty string.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from quantops_exporter.sources.errors import (
    BadPayload,
    Forbidden,
    Refused,
    SourceError,
    Unreachable,
    ValueTooLarge,
    WrongType,
)
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.sources.resp import Batch, exchange
from quantops_exporter.trace import trace, waiting_on


@dataclass(frozen=True, slots=True)
class KeyRead:
    """What one key held: its bytes (None when missing), or that it holds another type."""

    key: str
    value: Any = None
    wrong_type: bool = False
    pttl_ms: int | None = None

    @property
    def missing(self) -> bool:
        """True when the key does not exist (or is an empty collection)."""
        return not self.wrong_type and self.value in (None, [], {})


def connect(
    url: str,
    *,
    timeout: float,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> aioredis.Redis:
    """A client for `url` that retries a failed command once, on a fresh connection.

    Reads are idempotent, and a connection idle in the pool may have been closed by a Valkey
    restart: without the retry, the first burst after a restart read "Connection closed by
    server" on every pooled connection and marked a healthy Valkey down. One retry only, with no
    wait: a server that stays down is still unreachable at once, and the runner's timeout bounds
    the whole read either way.

    No `socket_timeout`: redis-py wraps socket I/O in `asyncio.wait_for` when it is set, and on
    Python 3.11 `wait_for` can swallow a cancellation that lands as the I/O completes, so the
    runner's timeout (the only one) might be lost. Connecting has its own bound.
    """
    options: dict[str, Any] = {}
    if username is not None:
        options["username"] = username
    if password is not None:
        options["password"] = password
    if url.startswith("rediss://"):
        options |= {"ssl_ca_certs": ca_file, "ssl_certfile": cert_file, "ssl_keyfile": key_file}
    return aioredis.Redis.from_url(
        url,
        protocol=2,  # RESP2: no push messages can interleave with replies (see resp.py)
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        **options,
    )


DEFAULT_MAX_VALUE_BYTES = 1024 * 1024


class ValkeyReader:
    """Pipelined, read-only Valkey reads that translate client errors into SourceErrors."""

    def __init__(
        self,
        client: aioredis.Redis,
        health: DependencyHealth,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        self._client = client
        self._health = health
        self._max_value = max_value_bytes
        self.raw_pipelines = 0  # pipelines sent as raw RESP (the fast path), for the tests

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def ping(self) -> float:
        """PING; return the round-trip time in seconds."""
        async with self._attempt("PING", "PING"):
            started = time.perf_counter()
            await self._client.ping()
            return time.perf_counter() - started

    async def get(self, key: str) -> KeyRead:
        """GET one string key."""
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[KeyRead]:
        """Every string key's value (at most the cap) and PTTL, in one round trip."""
        results = await self._pipeline(_get_many_batch(tuple(keys), self._max_value))
        reads = []
        for index, key in enumerate(keys):
            value, pttl = results[2 * index], results[2 * index + 1]
            if pttl == -2:  # no such key (GETRANGE answers "" for it)
                value = None
            elif isinstance(value, bytes) and len(value) > self._max_value:
                raise ValueTooLarge(
                    f"{key} holds more than the {self._max_value}-byte cap "
                    "(QUANTOPS_VALKEY_MAX_VALUE_BYTES): not read"
                ).located(Dependency.VALKEY, key)
            reads.append(_key_read(key, value, pttl_ms=pttl if isinstance(pttl, int) else None))
        return reads

    async def newest_members(self, keys: Sequence[str]) -> list[KeyRead]:
        """The highest-scored (member, score) of every sorted set, in one round trip."""
        results = await self._pipeline(_newest_batch(tuple(keys)))
        return [_key_read(key, _newest(value)) for key, value in zip(keys, results, strict=True)]

    async def hgetall(self, key: str) -> KeyRead:
        """HGETALL one hash key."""
        (value,) = await self._pipeline(Batch.of([("HGETALL", key)]))
        if isinstance(value, list):  # the raw reply: field, value, field, value…
            value = dict(zip(value[::2], value[1::2], strict=True))
        return _key_read(key, value)

    async def _pipeline(self, batch: Batch) -> list[Any]:
        """Send the batch's commands in one round trip; WRONGTYPE stays per key, other errors raise.

        Raw RESP through `resp.exchange` when the client allows it (the hot path), else
        redis-py's pipeline; either way a failure on a stale pooled connection is retried once
        on a fresh one, as the client does for its own commands.
        """
        commands = batch.commands
        first = " ".join(str(part) for part in commands[0][:2])
        more = f" and {len(commands) - 1} more" if len(commands) > 1 else ""
        async with self._attempt(f"{first}{more}", str(commands[0][1])):
            started = time.perf_counter()
            results = await self._send(batch)
            trace(
                "valkey_pipeline",
                commands=len(commands),
                first=[str(c[0]) for c in commands[:3]],
                seconds=round(time.perf_counter() - started, 6),
            )
        for command, result in zip(commands, results, strict=True):
            if isinstance(result, redis_errors.ResponseError) and not _is_wrong_type(result):
                raise _translate(result).located(Dependency.VALKEY, str(command[1]))
        return results

    async def _send(self, batch: Batch) -> list[Any]:
        try:
            replies = await exchange(self._client, batch)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            replies = await exchange(self._client, batch)  # the client's own retry policy
        if replies is not None:
            self.raw_pipelines += 1
            return replies
        pipe = self._client.pipeline(transaction=False)
        for command in batch.commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    @asynccontextmanager
    async def _attempt(self, what: str, item: str) -> AsyncIterator[None]:
        """One round trip, `what` for a timeout's summary, located at `item` (its first key,
        or PING): what the check could not read when the whole batch fails."""
        with waiting_on(f"Valkey {what}", Dependency.VALKEY, item):
            async with self._health.attempt(Dependency.VALKEY):
                try:
                    yield
                except redis_errors.RedisError as err:
                    raise _translate(err).located(Dependency.VALKEY, item) from err


def _key_read(key: str, value: object, *, pttl_ms: int | None = None) -> KeyRead:
    wrong = _is_wrong_type(value)
    return KeyRead(  # positional: a third cheaper than by keyword, once per key of a run
        key,
        None if wrong else value,
        wrong,
        pttl_ms if pttl_ms is not None and pttl_ms >= 0 else None,
    )


@functools.lru_cache(maxsize=8)  # a check's keys change only with a reload
def _get_many_batch(keys: tuple[str, ...], cap: int) -> Batch:
    commands: list[tuple[str, str, int, int] | tuple[str, str]] = []
    for key in keys:
        commands.append(("GETRANGE", key, 0, cap))  # inclusive: one byte past the cap
        commands.append(("PTTL", key))
    return Batch.of(commands)


@functools.lru_cache(maxsize=8)
def _newest_batch(keys: tuple[str, ...]) -> Batch:
    return Batch.of([("ZREVRANGE", key, 0, 0, "WITHSCORES") for key in keys])


def _newest(value: object) -> object:
    """ZREVRANGE key 0 0 WITHSCORES as (member, float score).

    The wire says [member, score]; redis-py's pipeline, depending on its version and protocol,
    [[member, score]] or [(member, score)].
    """
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list | tuple):
        value = list(value[0])
    if isinstance(value, list) and len(value) == 2:
        member, score = value
        try:
            return member, float(score)
        except (TypeError, ValueError):
            return member, score
    return value


def _is_wrong_type(value: object) -> bool:
    return isinstance(value, redis_errors.ResponseError) and str(value).startswith("WRONGTYPE")


def _translate(err: redis_errors.RedisError) -> SourceError:
    """Every client error as the SourceError that names it; never the bare base class."""
    if isinstance(err, redis_errors.AuthenticationError):  # a ConnectionError subclass
        return Forbidden(
            f"Valkey refused the credentials ({err}): check VALKEY_USERNAME and the password"
        )
    if isinstance(err, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return Unreachable(f"Valkey: {err}")
    if isinstance(err, redis_errors.NoPermissionError) or str(err).startswith("NOPERM"):
        return Forbidden(f"Valkey refused the command: {err}")
    if _is_wrong_type(err):
        return WrongType(str(err))
    if isinstance(err, redis_errors.InvalidResponse | redis_errors.DataError):
        return BadPayload(f"Valkey answered something that is not RESP: {err}")
    if isinstance(err, redis_errors.ResponseError):  # LOADING, BUSY, MISCONF, unknown command…
        return Refused(f"Valkey refused the command: {err}")
    return Unreachable(f"Valkey: {type(err).__name__}: {err}")
