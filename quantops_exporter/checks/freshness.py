"""Pre-Open Spin-Up §2-§3 and Daily Ops Snapshot §4: are the stack's caches being refreshed?

Each check reads its keys in one pipeline, turns every key into a `Stamp` (when it was last
updated, or why that cannot be told) and hands the stamps to the pure `judge_freshness`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.parsing import as_object
from quantops_exporter.checks.thresholds import SignalTimestampSource, Thresholds
from quantops_exporter.checks.timestamps import (
    TimestampError,
    find_timestamp,
    from_epoch,
    parse_timestamp,
)
from quantops_exporter.checks.verdict import (
    Freshness,
    Reason,
    Source,
    Status,
    Unreadable,
    Verdict,
    ok,
)
from quantops_exporter.humanize import format_duration
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.payloads import decode_json, quick_object
from quantops_exporter.sources.valkey import KeyRead
from quantops_exporter.worker import off_loop

MANIFOLD_KEY = "ws:last:manifold:{instrument}"
SIGNAL_INDEX_KEY = "sep:signal_index:{instrument}"
GATES_BLOB_KEY = "opt:rolling:gates_blob"
GATES_BLOB_TS_FIELDS = ("ts", "ts_ms", "timestamp", "time")

# Fail-kind problems outrank error-kind ones: a stale instrument is a fact about the stack,
# while a malformed one only says we could not tell.
_FAIL_REASONS = (Reason.MISSING, Reason.STALE)
_ERROR_REASONS = (Reason.WRONG_TYPE, Reason.BAD_PAYLOAD, Reason.CLOCK_SKEW)


@dataclass(slots=True)  # not frozen: a frozen init cost 0.4 µs more, a run makes one per key
class Stamp:
    """When one key was last updated, or the problem that stopped us from telling (made and
    judged within one run: never stored)."""

    instrument: str
    updated_at: float | None = None
    problem: Reason | None = None
    detail: str = ""


def judge_freshness(
    source: Source,
    stamps: Sequence[Stamp],
    *,
    now: float,
    max_age: float,
    max_skew: float,
    what: str,
    key: str = "",
) -> Verdict:
    """ok when every stamp is at most `max_age` old; else fail or error with the worst reason.

    `key` is the Valkey key template (`{instrument}` filled in) each stamp was read from: the
    keys whose value could not be judged are what the run could not read."""
    findings: dict[Reason, list[str]] = {}
    unjudged: list[tuple[str, Reason]] = []
    ages: dict[str, float | None] = {}
    for stamp in stamps:
        label = stamp.instrument or what
        problem, detail = stamp.problem, stamp.detail
        age = None if stamp.updated_at is None else now - stamp.updated_at
        ages[label] = None if age is None else round(age, 3)
        if problem is None and age is not None:
            if age < -max_skew:
                problem, detail = Reason.CLOCK_SKEW, f"{format_duration(-age)} in the future"
            elif age > max_age:
                problem, detail = Reason.STALE, f"{format_duration(age)} old"
        if problem is not None:
            findings.setdefault(problem, []).append(f"{label} ({detail})" if detail else label)
            if problem in _ERROR_REASONS:
                unjudged.append((stamp.instrument, problem))
    freshness = tuple(
        Freshness(source, stamp.instrument, _plausible(stamp.updated_at, now, max_skew))
        for stamp in stamps
    )
    observations = {"ages_seconds": ages, "max_age_seconds": max_age}
    if not findings:
        oldest = max((a for a in ages.values() if a is not None), default=0.0)
        return ok(
            f"{what}: all {len(stamps)} fresh (oldest {oldest:.0f}s, max {max_age:.0f}s)",
            freshness=freshness,
            observations=observations,
        )
    status, reason = _worst(findings)
    summary = "; ".join(f"{found.value}: {', '.join(items)}" for found, items in findings.items())
    return Verdict(
        status,
        reason,
        f"{what}: {summary} (max {max_age:.0f}s)",
        freshness=freshness,
        observations=observations,
        unreadable=tuple(
            Unreadable(Dependency.VALKEY, key.format(instrument=instrument), problem)
            for instrument, problem in unjudged
        )
        if key
        else (),
    )


def _worst(findings: dict[Reason, list[str]]) -> tuple[Status, Reason]:
    for reason in _FAIL_REASONS:
        if reason in findings:
            return Status.FAIL, reason
    for reason in _ERROR_REASONS:
        if reason in findings:
            return Status.ERROR, reason
    raise ValueError(f"unranked findings {sorted(findings)}")  # pragma: no cover - closed set


def _plausible(updated_at: float | None, now: float, max_skew: float) -> float | None:
    """Drop future timestamps so a clock-skewed writer cannot look fresh on a dashboard."""
    if updated_at is None or updated_at > now + max_skew:
        return None
    return updated_at


def stamp_json_key(
    instrument: str,
    read: KeyRead,
    fields: Sequence[str],
    *,
    now: float,
    ttl: float | None = None,
) -> Stamp:
    """Stamp a STRING key holding a JSON object with a timestamp field.

    Without a timestamp field, a key written with a known expiry still tells its age:
    age = ttl - remaining TTL (sep-stack-contract.md §1.4, the writer sets EX 300).
    """
    # The common case first: a JSON object whose first timestamp field is an epoch number.
    # The same answer as below, in 1.6 µs less per key (phases at 1,000 instruments: the
    # stamps 2.9 ms, orjson 1.3 of it); anything else takes the careful path.
    document = None if read.wrong_type else quick_object(read.value)
    if document is not None:
        for name in fields:
            value = document.get(name)
            if value is not None:
                if type(value) is float or type(value) is int:
                    try:
                        return Stamp(instrument, from_epoch(float(value)))
                    except TimestampError:
                        pass
                break
    if read.wrong_type:
        return Stamp(instrument, problem=Reason.WRONG_TYPE, detail="not a STRING")
    if read.missing:
        return Stamp(instrument, problem=Reason.MISSING, detail="key missing")
    if document is None:  # else decoded above already, as decode_json would have
        try:
            # Only the timestamp is read: an integer beyond 64 bits may come back as a float.
            document = as_object(
                decode_json(read.value, "the value", exact_integers=False), "the value"
            )
        except BadPayload as err:
            return Stamp(instrument, problem=Reason.BAD_PAYLOAD, detail=_short(err))
    try:
        _field, updated_at = find_timestamp(document, fields)
    except TimestampError as err:
        if ttl is not None and read.pttl_ms is not None:
            return Stamp(instrument, updated_at=now - (ttl - read.pttl_ms / 1000))
        return Stamp(instrument, problem=Reason.BAD_PAYLOAD, detail=_short(err))
    return Stamp(instrument, updated_at=updated_at)


def stamp_newest_signal(instrument: str, read: KeyRead, mode: SignalTimestampSource) -> Stamp:
    """Stamp a signal index from its newest member: `sep:signal:{inst}:{ts_ns}` and its score.

    `mode` picks the clock: `member` (the ts_ns suffix, confirmed by the contract), `score`
    (the ZSET score, unit undocumented) or `auto` (the suffix when it parses, else the score).
    """
    if read.wrong_type:
        return Stamp(instrument, problem=Reason.WRONG_TYPE, detail="not a ZSET")
    if read.missing:
        return Stamp(instrument, problem=Reason.MISSING, detail="no signals indexed")
    member, score = read.value
    if mode is not SignalTimestampSource.SCORE:
        # The suffix alone, as bytes: one run at 10,000 instruments decoded and split 10,000
        # members it needed only the tail of (cProfile: the stamp was 40 % of the run).
        tail = member.rpartition(b":")[2] if isinstance(member, bytes) else None
        if tail is not None and tail.isdigit():
            try:
                return Stamp(instrument, updated_at=parse_timestamp(int(tail)))
            except TimestampError:
                pass  # worded below, with the score's verdict
    member_text = member.decode("utf-8", "replace") if isinstance(member, bytes) else str(member)
    suffix = member_text.rsplit(":", 1)[-1]
    candidates = {SignalTimestampSource.MEMBER: suffix, SignalTimestampSource.SCORE: score}
    order = tuple(candidates) if mode is SignalTimestampSource.AUTO else (mode,)
    errors = []
    for source in order:
        try:
            return Stamp(instrument, updated_at=parse_timestamp(candidates[source]))
        except TimestampError as err:
            errors.append(f"{source.value}: {_short(err)}")
    return Stamp(instrument, problem=Reason.BAD_PAYLOAD, detail="; ".join(errors))


@functools.lru_cache(maxsize=8)  # the instruments change only with a reload
def _keys(template: str, instruments: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(template.format(instrument=inst) for inst in instruments)


def _short(err: Exception) -> str:
    return str(err)[:120]


async def check_manifold_freshness(ctx: CheckContext) -> Verdict:
    """Every `ws:last:manifold:{instrument}` is JSON and at most FRESH_MAX_WS_AGE_SEC old."""
    reads = await ctx.valkey.get_many(_keys(MANIFOLD_KEY, ctx.instruments))
    return await off_loop(_manifolds, ctx.instruments, reads, ctx.thresholds, ctx.clock())


def _manifolds(
    instruments: Sequence[str], reads: Sequence[KeyRead], t: Thresholds, now: float
) -> Verdict:
    """manifold_freshness's verdict, in the worker thread (a JSON document per instrument)."""
    stamps = [
        stamp_json_key(inst, read, t.manifold_ts_fields, now=now, ttl=t.manifold_ttl_seconds)
        for inst, read in zip(instruments, reads, strict=True)
    ]
    return _judge(t, Source.WS_MANIFOLD, stamps, now)


async def check_signal_freshness(ctx: CheckContext) -> Verdict:
    """Every `sep:signal_index:{instrument}` had an insert within FRESH_MAX_SIGNAL_AGE_SEC."""
    reads = await ctx.valkey.newest_members(_keys(SIGNAL_INDEX_KEY, ctx.instruments))
    return await off_loop(_signals, ctx.instruments, reads, ctx.thresholds, ctx.clock())


def _signals(
    instruments: Sequence[str], reads: Sequence[KeyRead], t: Thresholds, now: float
) -> Verdict:
    """signal_freshness's verdict, in the worker thread (a member per instrument)."""
    stamps = [
        stamp_newest_signal(inst, read, t.signal_ts_source)
        for inst, read in zip(instruments, reads, strict=True)
    ]
    return _judge(t, Source.SIGNAL_INDEX, stamps, now)


async def check_gates_blob_freshness(ctx: CheckContext) -> Verdict:
    """`opt:rolling:gates_blob` field `ts` is at most GATES_BLOB_MAX_AGE_SEC old."""
    read = await ctx.valkey.get(GATES_BLOB_KEY)
    now = ctx.clock()
    stamp = stamp_json_key("", read, GATES_BLOB_TS_FIELDS, now=now)
    return _judge(ctx.thresholds, Source.GATES_BLOB, [stamp], now)


def freshness_limits(t: Thresholds) -> dict[Source, float]:
    """Each freshness source's configured age limit (the checks judge by it; /metrics exports it
    for the staleness alert)."""
    return {
        Source.WS_MANIFOLD: t.fresh_max_ws_age_sec,
        Source.SIGNAL_INDEX: t.fresh_max_signal_age_sec,
        Source.GATES_BLOB: t.gates_blob_max_age_sec,
        Source.CANDLES: t.candles_max_age_seconds,
    }


_WHAT = {
    Source.WS_MANIFOLD: "manifold cache",
    Source.SIGNAL_INDEX: "signal index",
    Source.GATES_BLOB: "gates blob",
}


_KEYS = {
    Source.WS_MANIFOLD: MANIFOLD_KEY,
    Source.SIGNAL_INDEX: SIGNAL_INDEX_KEY,
    Source.GATES_BLOB: GATES_BLOB_KEY,
}


def _judge(t: Thresholds, source: Source, stamps: Sequence[Stamp], now: float) -> Verdict:
    return judge_freshness(
        source,
        stamps,
        now=now,
        max_age=freshness_limits(t)[source],
        max_skew=t.max_clock_skew_seconds,
        what=_WHAT[source],
        key=_KEYS[source],
    )
