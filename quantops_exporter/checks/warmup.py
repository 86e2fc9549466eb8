"""Post-Deploy Warmup §2: candles are served, complete and fresh."""

from __future__ import annotations

from quantops_exporter.checks.base import CheckContext, from_http, judged_at
from quantops_exporter.checks.parsing import as_list, as_object
from quantops_exporter.checks.timestamps import TimestampError, find_timestamp
from quantops_exporter.checks.verdict import (
    Freshness,
    Measure,
    Reading,
    Reason,
    Source,
    Verdict,
    error,
    fail,
    ok,
)
from quantops_exporter.market import closure_summary
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.health import Dependency
from quantops_exporter.urls import endpoint

CANDLES_PATH = "/api/candles"
CANDLE_TIME_FIELDS = ("time", "ts", "t", "timestamp", "ts_ms")


def judge_candles(
    payload: object,
    instrument: str,
    limit: int,
    max_age: float,
    now: float,
    market_open: bool,
    max_skew: float,
    opened_at: float | None = None,
    closure: str = "FX market closed",
) -> Verdict:
    """`limit` items are returned, and the newest is at most `max_age` old while open; while
    closed (`closure` says why) the age is reported, not judged.

    The age counts from the market's last open (`opened_at`) when the newest candle is older:
    no M1 candle completes in the first minute after an open, and the close's last one, days
    old, is not a stale feed then (it failed every Sunday's first runs). No candle within
    `max_age` of the open is.
    """
    candles = as_list(payload, ("items", "candles"), CANDLES_PATH)
    readings = (Reading(Measure.CANDLES, float(len(candles)), (instrument,)),)
    newest = None
    for index, raw in enumerate(candles):
        try:
            _field, moment = find_timestamp(as_object(raw, f"candle {index}"), CANDLE_TIME_FIELDS)
        except TimestampError as err:
            raise BadPayload(f"candle {index}: {err}") from err
        newest = moment if newest is None else max(newest, moment)
    freshness = (
        Freshness(
            Source.CANDLES,
            instrument,
            newest if newest is not None and newest <= now + max_skew else None,
        ),
    )
    if len(candles) < limit:
        return fail(
            Reason.THRESHOLD,
            f"{len(candles)} {instrument} M1 candles, expected {limit}: the warmup "
            "backfill has not finished",
            readings=readings,
            freshness=freshness,
        )
    if newest is not None and market_open:
        age = now - newest
        since_open = opened_at is not None and newest < opened_at <= now
        if since_open:
            age = now - opened_at  # type: ignore[operator]  # since_open says it is a float
        if age < -max_skew:
            return error(
                Reason.CLOCK_SKEW,
                f"newest candle is {-age:.0f}s in the future",
                readings=readings,
            )
        if age > max_age:
            what = (
                f"no {instrument} candle since the open {age:.0f}s ago"
                if since_open
                else f"newest {instrument} candle is {age:.0f}s old"
            )
            return fail(
                Reason.STALE,
                f"{what} (max {max_age:.0f}s)",
                readings=readings,
                freshness=freshness,
            )
    if newest is None:
        judged = "none to judge for freshness"
    elif market_open:
        judged = "newest fresh"
    else:  # the candle fetcher rests with the market: an old candle is not stale then
        judged = f"newest {max(0.0, now - newest):.0f}s old, freshness not judged: {closure}"
    return ok(
        f"{len(candles)} {instrument} M1 candles, {judged}",
        readings=readings,
        freshness=freshness,
    )


async def check_candles(ctx: CheckContext) -> Verdict:
    """`/api/candles?instrument=…&granularity=M1&limit=120` is complete and fresh."""
    t = ctx.thresholds
    url = endpoint(ctx.api_url, CANDLES_PATH)
    payload = await ctx.http.get_json(
        Dependency.API,
        url,
        {"instrument": t.candles_instrument, "granularity": "M1", "limit": str(t.candles_limit)},
    )
    now = ctx.clock()
    with from_http(Dependency.API, url):
        verdict = judge_candles(
            payload,
            t.candles_instrument,
            t.candles_limit,
            t.candles_max_age_seconds,
            now,
            ctx.calendar.is_open(now),
            t.max_clock_skew_seconds,
            ctx.calendar.last_open(now),
            closure_summary(ctx.calendar, now),
        )
    return judged_at(verdict, Dependency.API, url)
