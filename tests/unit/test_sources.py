"""Sources: HTTP and Valkey failures become SourceErrors and dependency health, never crashes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import fakeredis
import pytest
from aiohttp import test_utils, web
from hypothesis import given
from hypothesis import strategies as st
from redis import exceptions as redis_errors

from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.verdict import Reason, Status, Verdict, reason_for
from quantops_exporter.runner import run_check
from quantops_exporter.simulator.valkey_server import free_port
from quantops_exporter.sources import errors
from quantops_exporter.sources.health import Dependency, DependencyHealth
from quantops_exporter.sources.http import HttpReader
from quantops_exporter.sources.payloads import decode_json
from quantops_exporter.sources.valkey import ValkeyReader, connect
from tests.factories import make_check, make_ctx

CAP = 1024
hung = asyncio.Event()


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"kill_switch": False})


async def _500(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _404(request: web.Request) -> web.Response:
    return web.Response(status=404, text="no")


async def _garbage(request: web.Request) -> web.Response:
    return web.Response(text="<html>login</html>", content_type="text/html")


async def _truncated(request: web.Request) -> web.Response:
    return web.Response(text='{"kill_switch": fal', content_type="application/json")


async def _big(request: web.Request) -> web.Response:
    return web.json_response({"pad": "x" * (CAP * 4)})


async def _big_chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(10):
        await response.write(b" " * 512)
    await response.write_eof()
    return response


async def _slow_drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b'{"kill_switch"')
    hung.set()
    await asyncio.sleep(30)
    return response


async def _reset(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()
    return web.Response(text="never sent")


@pytest.fixture
async def api() -> AsyncIterator[str]:
    """A misbehaving API, one path per fault."""
    app = web.Application()
    for path, handler in {
        "/ok": _ok,
        "/500": _500,
        "/404": _404,
        "/garbage": _garbage,
        "/truncated": _truncated,
        "/big": _big,
        "/chunked": _big_chunked,
        "/drip": _slow_drip,
        "/reset": _reset,
    }.items():
        app.router.add_get(path, handler)
    server = test_utils.TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def reader() -> AsyncIterator[tuple[HttpReader, DependencyHealth]]:
    """An HttpReader with a small body cap, and the health it reports to."""
    health = DependencyHealth()
    session = aiohttp.ClientSession()
    yield HttpReader(session, health, max_body_bytes=CAP), health
    await session.close()


async def test_http_ok_marks_dependency_up(api: str, reader) -> None:  # type: ignore[no-untyped-def]
    """A 200 with JSON is returned and the dependency is up."""
    http, health = reader
    assert await http.get_json(Dependency.API, api + "/ok") == {"kill_switch": False}
    assert health.state[Dependency.API] is True


@pytest.mark.parametrize(
    ("path", "error", "up"),
    [
        ("/500", errors.HttpStatusError, False),
        ("/404", errors.HttpStatusError, True),
        ("/garbage", errors.BadPayload, True),
        ("/truncated", errors.BadPayload, True),
        ("/big", errors.TooLarge, True),
        ("/chunked", errors.TooLarge, True),
        ("/reset", errors.Unreachable, False),
    ],
)
async def test_http_faults(api: str, reader, path: str, error: type, up: bool) -> None:  # type: ignore[no-untyped-def]
    """Each fault raises its SourceError; only refusals, resets and 5xx mark the API down."""
    http, health = reader
    with pytest.raises(error):
        await http.get_json(Dependency.API, api + path)
    assert health.state[Dependency.API] is up


async def test_connection_refused_is_unreachable(reader) -> None:  # type: ignore[no-untyped-def]
    """Nothing listening: Unreachable, dependency down."""
    http, health = reader
    with pytest.raises(errors.Unreachable):
        await http.get_json(Dependency.ALLOCATOR, f"http://127.0.0.1:{free_port()}/status")
    assert health.state[Dependency.ALLOCATOR] is False


async def test_slow_drip_is_cut_by_the_runner_timeout(api: str, reader) -> None:  # type: ignore[no-untyped-def]
    """A body that never finishes is cancelled at the check's timeout: error/timeout, API down."""
    http, health = reader
    hung.clear()

    async def run(ctx: CheckContext) -> Verdict:
        await http.get_json(Dependency.API, api + "/drip")
        return Verdict(Status.OK, Reason.NONE, "")

    outcome = await run_check(make_check(run, timeout=0.3), make_ctx())
    assert hung.is_set()
    assert (outcome.status, outcome.reason) == (Status.ERROR, Reason.TIMEOUT)
    assert outcome.summary == f"no answer from GET {api}/drip within the 0.3s timeout"
    assert health.state[Dependency.API] is False


@pytest.fixture
async def fake_valkey() -> AsyncIterator[tuple[ValkeyReader, fakeredis.FakeAsyncRedis]]:
    """A reader over fakeredis, and a writer client to seed it."""
    server = fakeredis.FakeServer()
    seed = fakeredis.FakeAsyncRedis(server=server)
    reader = ValkeyReader(fakeredis.FakeAsyncRedis(server=server), DependencyHealth())
    yield reader, seed
    await reader.close()
    await seed.aclose()


async def test_valkey_reads_report_missing_and_wrong_type_per_key(fake_valkey) -> None:  # type: ignore[no-untyped-def]
    """A pipeline of GETs gives each key's value, missing, or wrong type, without raising."""
    reader, seed = fake_valkey
    await seed.set("a", json.dumps({"ts": 1}))
    await seed.hset("b", "ts", "1")
    reads = await reader.get_many(["a", "b", "c"])
    assert reads[0].value == b'{"ts": 1}' and not reads[0].missing
    assert reads[1].wrong_type and not reads[1].missing
    assert reads[2].missing and not reads[2].wrong_type
    assert reads[0].pttl_ms is None  # no expiry set


async def test_valkey_newest_member_and_ttl(fake_valkey) -> None:  # type: ignore[no-untyped-def]
    """ZREVRANGE 0 0 returns the highest-scored member; PTTL is read when asked."""
    reader, seed = fake_valkey
    await seed.zadd("z", {"old": 1.0, "new": 2.0})
    await seed.set("t", "x", ex=300)
    await seed.set("s", "not a zset")
    (z, s, missing) = await reader.newest_members(["z", "s", "nothing"])
    assert z.value == (b"new", 2.0)
    assert s.wrong_type
    assert missing.missing
    (t,) = await reader.get_many(["t"])
    assert t.pttl_ms is not None and 299_000 < t.pttl_ms <= 300_000


async def test_valkey_unreachable() -> None:
    """A closed port raises Unreachable and marks Valkey down."""
    health = DependencyHealth()
    reader = ValkeyReader(connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1), health)
    try:
        with pytest.raises(errors.Unreachable):
            await reader.ping()
    finally:
        await reader.close()
    assert health.state[Dependency.VALKEY] is False


async def test_empty_collections_read_as_missing(fake_valkey) -> None:  # type: ignore[no-untyped-def]
    """An absent or emptied HASH or ZSET is missing; an empty STRING is a (bad) value."""
    reader, seed = fake_valkey
    assert (await reader.hgetall("risk:alloc_budget")).missing
    await seed.zadd("z", {"a": 1.0})
    await seed.zrem("z", "a")  # emptied: Valkey deletes it
    assert (await reader.newest_members(["z"]))[0].missing
    await seed.set("s", "")
    empty = await reader.get("s")
    assert not empty.missing and empty.value == b""


async def test_a_value_over_the_cap_is_refused_without_reading_it_whole() -> None:
    """GETRANGE 0 <cap>: one byte past the cap crosses the wire, then ValueTooLarge; a value at
    the cap, an empty string and a missing key read as what they are."""
    server = fakeredis.FakeServer()
    seed = fakeredis.FakeAsyncRedis(server=server)
    client = fakeredis.FakeAsyncRedis(server=server)
    reader = ValkeyReader(client, DependencyHealth(), max_value_bytes=100)
    await seed.set("at_cap", b"x" * 100)
    await seed.set("empty", b"")
    await seed.set("over", b"y" * 10_000)
    try:
        at_cap, empty, missing = await reader.get_many(["at_cap", "empty", "missing"])
        assert len(at_cap.value) == 100
        assert empty.value == b"" and not empty.missing
        assert missing.missing
        with pytest.raises(errors.ValueTooLarge, match=r"over holds more than the 100-byte cap"):
            await reader.get_many(["at_cap", "over"])
    finally:
        await reader.close()
        await seed.aclose()


def _leaves(kind: type[errors.SourceError]) -> list[type[errors.SourceError]]:
    subclasses = kind.__subclasses__()
    return [kind] + [leaf for sub in subclasses for leaf in _leaves(sub)]


@pytest.mark.parametrize(
    "kind",
    [k for k in _leaves(errors.SourceError) if k is not errors.SourceError],
    ids=lambda k: k.__name__,
)
def test_every_source_error_has_its_own_reason(kind: type[errors.SourceError]) -> None:
    """Walks the error tree: every class a source raises maps to a reason other than
    internal_error (kept for bugs)."""
    err = kind("GET http://x", 500) if kind is errors.HttpStatusError else kind("x")
    assert reason_for(err) is not Reason.INTERNAL_ERROR


@pytest.mark.parametrize(
    ("raised", "kind", "reason"),
    [
        (
            redis_errors.ResponseError("LOADING Valkey is loading the dataset"),
            errors.Refused,
            Reason.REFUSED,
        ),
        (
            redis_errors.ResponseError("ERR unknown command 'GETRANGE'"),
            errors.Refused,
            Reason.REFUSED,
        ),
        (redis_errors.BusyLoadingError("LOADING"), errors.Unreachable, Reason.UNREACHABLE),
        (redis_errors.NoPermissionError("NOPERM no"), errors.Forbidden, Reason.FORBIDDEN),
        (
            redis_errors.InvalidResponse("Protocol Error: b'?'"),
            errors.BadPayload,
            Reason.BAD_PAYLOAD,
        ),
        (redis_errors.ConnectionError("reset"), errors.Unreachable, Reason.UNREACHABLE),
        (redis_errors.RedisError("anything else"), errors.Unreachable, Reason.UNREACHABLE),
    ],
)
async def test_valkey_errors_map_to_specific_reasons(
    raised: Exception, kind: type[errors.SourceError], reason: Reason
) -> None:
    """A refused command, garbage RESP, a lost connection: each its reason, never a bare
    SourceError (which the runner would call internal_error)."""

    class Failing:
        async def ping(self) -> None:
            raise raised

        async def aclose(self) -> None:
            pass

    reader = ValkeyReader(Failing(), DependencyHealth())  # type: ignore[arg-type]
    with pytest.raises(kind) as caught:
        await reader.ping()
    assert type(caught.value) is kind and reason_for(caught.value) is reason


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"ts": ' + b"9" * 5000 + b"}", "too large"),
        (b'{"ts": ' + b"9" * 41 + b"}", "too large"),
        (b"\xff\xfe", "not JSON"),
    ],
    ids=["deep", "huge-int", "long-int", "not-utf8"],
)
def test_hostile_json_is_bad_payload_not_a_crash(raw: bytes, why: str) -> None:
    """Nesting past the recursion limit and integers no float holds are bounded refusals."""
    with pytest.raises(errors.BadPayload, match=why):
        decode_json(raw, "the manifold")
    assert decode_json(b'{"ts": 1758059154076123456}', "ok") == {"ts": 1758059154076123456}


def _standard(raw: bytes | str) -> object:
    """What decoding meant before orjson: the standard library, integers bounded at 40 digits,
    as a typed canonical form (1 and 1.0 differ; NaN equals NaN); "bad" for a refusal."""

    def bounded(text: str) -> int:
        if len(text.lstrip("-")) > 40:
            raise ValueError(text)
        return int(text)

    try:
        return _canonical(json.loads(raw, parse_int=bounded))
    except (ValueError, RecursionError):
        return "bad"


def _canonical(value: object) -> object:
    if isinstance(value, dict):
        return ("dict", tuple((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_canonical(v) for v in value))
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


def _decoded(raw: bytes | str) -> object:
    try:
        return _canonical(decode_json(raw, "the value"))
    except errors.BadPayload:
        return "bad"


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
_FRAGMENTS = st.sampled_from(
    [
        b"NaN",
        b"-Infinity",
        b"1e400",
        b"18446744073709551616",
        b"-9223372036854775809",
        b'"\\ud800"',
        b"\xff",
        b'{"a":1,"a":2}',
        b"[1,]",
        b"01",
        b" ",
        b"1.0e-400",
        b'"\\u0000"',
    ]
)


@given(
    value=_JSON_VALUES,
    ascii_only=st.booleans(),
    as_bytes=st.booleans(),
    noise=st.lists(_FRAGMENTS, max_size=2),
)
def test_the_fast_decoder_never_changes_a_result(
    value: object, ascii_only: bool, as_bytes: bool, noise: list[bytes]
) -> None:
    """orjson's fast path decodes exactly what the standard library did, value and type, and
    refuses exactly what it refused (NaN, wide integers, broken documents, odd escapes)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    if noise:  # splice fragments into an array: still JSON for one decoder, maybe not the other
        text = "[" + ",".join([text, *(f.decode("unicode_escape") for f in noise)]) + "]"
    raw: bytes | str = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert _decoded(raw) == _standard(raw)


async def test_a_caller_never_joins_a_request_its_last_waiter_abandoned() -> None:
    """The shared read of the stack's /metrics: when the last waiter's check times out, the
    request is cancelled; a check that asks at that moment gets a fresh request, not the
    CancelledError of someone else's timeout (which ended its run with no outcome and an
    ERROR traceback from APScheduler, seen in CI while the API hung)."""
    from quantops_exporter.sources.stack_metrics import StackMetricsReader

    calls = 0

    class Http:
        async def get_text(self, dependency: object, url: str, params: object = None) -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.Event().wait()  # the first request hangs
            return "sep_span_integrity_ok 1\n"

    reader = StackMetricsReader(Http(), "http://stack.invalid/metrics", share_for=0)  # type: ignore[arg-type]
    first = asyncio.create_task(reader.read())
    await asyncio.sleep(0.01)  # its request is in flight
    first.cancel()  # its check timed out: the last waiter leaves, the request is cancelled
    late = asyncio.create_task(reader.read())  # another check asks right then
    with pytest.raises(asyncio.CancelledError):
        await first
    metrics = await asyncio.wait_for(late, 2)
    assert metrics.has("sep_span_integrity_ok") and calls == 2
    await reader.close()
