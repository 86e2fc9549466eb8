"""Freshness evaluators: stamping each key shape and judging ages against the limits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantops_exporter.checks import freshness
from quantops_exporter.checks.freshness import (
    Stamp,
    judge_freshness,
    stamp_json_key,
    stamp_newest_signal,
)
from quantops_exporter.checks.thresholds import SignalTimestampSource
from quantops_exporter.checks.verdict import Reason, Source, Status
from quantops_exporter.sources.payloads import MAX_INT_DIGITS, decode_json
from quantops_exporter.sources.valkey import KeyRead

NOW = 1_800_000_000.0
FIELDS = ("ts_ms", "ts", "t", "timestamp", "time")


def judge(*stamps: Stamp, max_age: float = 30.0):  # type: ignore[no-untyped-def]
    """Judge manifold stamps at NOW with a 5 s skew allowance."""
    return judge_freshness(
        Source.WS_MANIFOLD, stamps, now=NOW, max_age=max_age, max_skew=5.0, what="manifold cache"
    )


def test_all_fresh_is_ok() -> None:
    """Every instrument within the limit gives ok with the oldest age in the summary."""
    verdict = judge(Stamp("EUR_USD", NOW - 3), Stamp("USD_JPY", NOW - 29))
    assert (verdict.status, verdict.reason) == (Status.OK, Reason.NONE)
    assert "oldest 29s" in verdict.summary
    assert [f.updated_at for f in verdict.freshness] == [NOW - 3, NOW - 29]


def test_one_stale_instrument_fails_and_is_named() -> None:
    """An instrument past the limit fails the check with reason stale, naming it and its age."""
    verdict = judge(Stamp("EUR_USD", NOW - 600), Stamp("USD_JPY", NOW - 1))
    assert (verdict.status, verdict.reason) == (Status.FAIL, Reason.STALE)
    assert "EUR_USD (10m old)" in verdict.summary
    assert "USD_JPY" not in verdict.summary


def test_exactly_at_the_limit_is_fresh() -> None:
    """The runbook says 'at most 30 seconds': 30 s is still fresh."""
    assert judge(Stamp("EUR_USD", NOW - 30)).status is Status.OK


def test_future_timestamp_is_clock_skew_never_fresh() -> None:
    """A timestamp beyond the skew allowance is an error, and is not exported as fresh."""
    verdict = judge(Stamp("EUR_USD", NOW + 3600))
    assert (verdict.status, verdict.reason) == (Status.ERROR, Reason.CLOCK_SKEW)
    assert verdict.freshness[0].updated_at is None


def test_small_future_offset_within_skew_is_tolerated() -> None:
    """Two writers' clocks a couple of seconds apart is normal."""
    assert judge(Stamp("EUR_USD", NOW + 2)).status is Status.OK


def test_fail_outranks_error() -> None:
    """A stale instrument (a fact about the stack) outranks a malformed one (we cannot tell)."""
    verdict = judge(
        Stamp("EUR_USD", problem=Reason.BAD_PAYLOAD, detail="not JSON"),
        Stamp("USD_JPY", NOW - 100),
    )
    assert (verdict.status, verdict.reason) == (Status.FAIL, Reason.STALE)
    assert "bad_payload: EUR_USD (not JSON)" in verdict.summary


def test_missing_outranks_stale() -> None:
    """A missing key is reported as missing even when another instrument is merely stale."""
    verdict = judge(Stamp("EUR_USD", problem=Reason.MISSING), Stamp("USD_JPY", NOW - 100))
    assert verdict.reason is Reason.MISSING


def test_only_errors_give_error() -> None:
    """Wrong-type keys alone make the check an error, not a failure."""
    verdict = judge(Stamp("EUR_USD", problem=Reason.WRONG_TYPE, detail="not a STRING"))
    assert (verdict.status, verdict.reason) == (Status.ERROR, Reason.WRONG_TYPE)


def raw(document: object) -> KeyRead:
    """A STRING key holding `document` as JSON."""
    return KeyRead("k", json.dumps(document).encode())


@pytest.mark.parametrize(
    "document",
    [
        {"ts_ms": int((NOW - 10) * 1000)},
        {"ts": NOW - 10},
        {"t": int((NOW - 10) * 1e9)},
        {"timestamp": "2027-01-15T08:00:00Z"},
        {"time": int((NOW - 10) * 1e6)},
    ],
)
def test_manifold_timestamp_field_variants(document: dict[str, object]) -> None:
    """Each field name and unit the contract lists yields a timestamp."""
    stamp = stamp_json_key("EUR_USD", raw(document), FIELDS, now=NOW)
    assert stamp.problem is None
    assert stamp.updated_at is not None


@pytest.mark.parametrize(
    ("read", "reason"),
    [
        (KeyRead("k", None), Reason.MISSING),
        (KeyRead("k", wrong_type=True), Reason.WRONG_TYPE),
        (KeyRead("k", b"{not json"), Reason.BAD_PAYLOAD),
        (KeyRead("k", b"[1, 2]"), Reason.BAD_PAYLOAD),
        (KeyRead("k", b"\xff\xfe"), Reason.BAD_PAYLOAD),
        (KeyRead("k", b'{"coherence": 0.6}'), Reason.BAD_PAYLOAD),
        (KeyRead("k", b'{"ts_ms": "soon"}'), Reason.BAD_PAYLOAD),
        (KeyRead("k", b'{"ts_ms": true}'), Reason.BAD_PAYLOAD),
    ],
)
def test_manifold_problems(read: KeyRead, reason: Reason) -> None:
    """Missing, wrong type, not JSON, not an object, no or bad timestamp: each its own reason."""
    assert stamp_json_key("EUR_USD", read, FIELDS, now=NOW).problem is reason


@given(
    stamp=st.integers(-(10**500), 10**500) | st.floats(allow_nan=False),
    other=st.integers(-(10**45), 10**45),
    field=st.sampled_from(FIELDS),
)
def test_an_integer_beyond_64_bits_never_changes_a_stamp(
    stamp: int | float, other: int, field: str
) -> None:
    """Stamps skip the search for integers orjson would round: the stamp (time or problem) is
    the one exact decoding gives, wherever the wide integer is, timestamp or not. One
    difference, on purpose: exact decoding refuses a document with an integer of more than
    MAX_INT_DIGITS digits anywhere; a stamp reads its timestamp (orjson rounds the other)."""
    read = KeyRead("k", json.dumps({"n": other, field: stamp}).encode())
    fast = stamp_json_key("EUR_USD", read, FIELDS, now=NOW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(freshness, "quick_object", lambda _raw: None)
        patch.setattr(freshness, "decode_json", lambda raw, what, **_: decode_json(raw, what))
        exact = stamp_json_key("EUR_USD", read, FIELDS, now=NOW)
    if len(str(abs(other))) > MAX_INT_DIGITS:
        assert exact.problem is Reason.BAD_PAYLOAD
        only_stamp = stamp_json_key("EUR_USD", raw({field: stamp}), FIELDS, now=NOW)
        assert (fast.updated_at, fast.problem) == (only_stamp.updated_at, only_stamp.problem)
    else:
        assert (fast.updated_at, fast.problem) == (exact.updated_at, exact.problem)


_STAMP_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**25), 10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["2027-01-15T08:00:00Z", "1800000000", "soon", ""])
    | st.lists(st.integers(), max_size=2)
)


@settings(max_examples=400)
@given(
    document=st.builds(
        lambda rest, field, value: {**rest, field: value},
        st.dictionaries(st.sampled_from([*FIELDS, "coherence", "n"]), _STAMP_VALUES),
        st.sampled_from(FIELDS),
        _STAMP_VALUES,
    )
    | st.dictionaries(st.sampled_from(["coherence", "n"]), _STAMP_VALUES)
    | st.lists(st.integers(), max_size=2)
    | st.integers(),
    raw=st.sampled_from([None, b"", b"{", b"NaN", b'{"ts": NaN}', b'{"ts": 1e400}', b"\xff"]),
    use_raw=st.booleans(),
    pttl=st.none() | st.integers(0, 300_000),
)
def test_the_quick_path_stamps_as_the_careful_one(
    document: object, raw: bytes | None, use_raw: bool, pttl: int | None
) -> None:
    """Logic: every document (objects with each timestamp spelling, none, several, bools,
    strings, lists; not objects; not JSON) gets the stamp the careful path gives: the same
    time, or the same problem worded the same."""
    value = raw if use_raw else json.dumps(document).encode()
    read = KeyRead("k", value, pttl_ms=pttl)
    quick = stamp_json_key("EUR_USD", read, FIELDS, now=NOW, ttl=300)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(freshness, "quick_object", lambda _raw: None)
        careful = stamp_json_key("EUR_USD", read, FIELDS, now=NOW, ttl=300)
    assert quick == careful


def test_ttl_fallback_when_no_timestamp_field() -> None:
    """Without a timestamp field, a key written with EX 300 and 290 s left is 10 s old."""
    read = KeyRead("k", b'{"coherence": 0.6}', pttl_ms=290_000)
    stamp = stamp_json_key("EUR_USD", read, FIELDS, now=NOW, ttl=300)
    assert stamp.updated_at == pytest.approx(NOW - 10)


def test_signal_member_suffix_is_the_clock() -> None:
    """`auto` reads ts_ns off the member name even when the score is in another unit."""
    ns = int((NOW - 20) * 1e9)
    read = KeyRead("k", (f"sep:signal:EUR_USD:{ns}".encode(), 12345.0))
    assert stamp_newest_signal(
        "EUR_USD", read, SignalTimestampSource.AUTO
    ).updated_at == pytest.approx(NOW - 20)


def test_signal_score_fallback_and_modes() -> None:
    """A member without a numeric suffix falls back to the score; `member` mode refuses it."""
    read = KeyRead("k", (b"sep:signal:EUR_USD:latest", (NOW - 5) * 1000))
    assert stamp_newest_signal(
        "EUR_USD", read, SignalTimestampSource.AUTO
    ).updated_at == pytest.approx(NOW - 5)
    assert stamp_newest_signal(
        "EUR_USD", read, SignalTimestampSource.SCORE
    ).updated_at == pytest.approx(NOW - 5)
    assert (
        stamp_newest_signal("EUR_USD", read, SignalTimestampSource.MEMBER).problem
        is Reason.BAD_PAYLOAD
    )


def test_signal_index_missing_or_wrong_type() -> None:
    """An empty or absent index is missing; a non-ZSET is wrong_type."""
    assert stamp_newest_signal("X_Y", KeyRead("k", None), "auto").problem is Reason.MISSING
    assert stamp_newest_signal("X_Y", KeyRead("k", wrong_type=True), "auto").problem is (
        Reason.WRONG_TYPE
    )
