"""allocator-lite and the published weights: Pre-Open §5, Daily §1/§3/§6, Troubleshooting 4."""

from __future__ import annotations

from collections.abc import Sequence

from quantops_exporter.checks.base import (
    CheckContext,
    from_http,
    from_valkey,
    judged_at,
    read_both,
    with_unconfigured,
)
from quantops_exporter.checks.parsing import as_decimal, as_object, as_weight_map
from quantops_exporter.checks.risk import ALLOCATION_STATUS_PATH, total_allocation
from quantops_exporter.checks.thresholds import WeightsScale
from quantops_exporter.checks.timestamps import TimestampError, parse_timestamp
from quantops_exporter.checks.verdict import (
    Freshness,
    Measure,
    Reading,
    Reason,
    Source,
    Status,
    Verdict,
    error,
    fail,
    ok,
)
from quantops_exporter.market import closure_summary
from quantops_exporter.sources.errors import BadPayload, WrongType
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.payloads import decode_json
from quantops_exporter.sources.stack_metrics import StackMetrics
from quantops_exporter.urls import endpoint

ALLOCATOR_SELECTED = "sep_allocator_selected"
WEIGHTS_KEY = "risk:allocation_weights"
STATUS_PATH = "/status"
HEALTH_PATH = "/health"


def selected(metrics: StackMetrics) -> list[str]:
    """Instruments with `sep_allocator_selected == 1` (the published Top-K)."""
    return sorted(
        s.labels.get("instrument", "?") for s in metrics.series(ALLOCATOR_SELECTED) if s.value == 1
    )


def judge_topk(metrics: StackMetrics, top_k: int) -> Verdict:
    """The number of selected instruments equals ALLOC_TOP_K."""
    if not metrics.has(ALLOCATOR_SELECTED):
        return Verdict(
            Status.FAIL, Reason.MISSING, f"the stack's /metrics has no {ALLOCATOR_SELECTED} series"
        )
    chosen = selected(metrics)
    readings = (
        Reading(Measure.ALLOCATOR_SELECTED, float(len(chosen))),
        Reading(Measure.ALLOCATOR_TOP_K, float(top_k)),
    )
    if len(chosen) != top_k:
        return fail(
            Reason.MISMATCH,
            f"{len(chosen)} instruments selected, ALLOC_TOP_K is {top_k}",
            readings=readings,
            observations={"selected": len(chosen)},
        )
    return Verdict(
        Status.OK, Reason.NONE, f"Top-{top_k} published: {', '.join(chosen)}", readings=readings
    )


def judge_allocation_status(
    weight_map: dict[str, float],
    chosen: Sequence[str],
    scale: WeightsScale,
    target: float,
    instruments: Sequence[str],
) -> Verdict:
    """Total allocation at most RISK_ALLOC_TARGET_PCT; non-zero weights only on the Top-K."""
    total = total_allocation(weight_map, scale, target)
    readings = (Reading(Measure.ALLOCATION_TOTAL, total),)
    off = sorted(i for i, w in weight_map.items() if w != 0 and i not in chosen)
    configured = frozenset(instruments)
    observations = {
        "total_allocation": round(total, 6),
        "off_top_k": len(off),
        "weighted": sorted(i for i, w in weight_map.items() if w and i in configured),
    }
    if total > target + 1e-9:
        return fail(
            Reason.THRESHOLD,
            f"total allocation {total:.3f} > RISK_ALLOC_TARGET_PCT {target:.2f}",
            readings=readings,
            observations=observations,
        )
    if off:
        return fail(
            Reason.MISMATCH,
            f"weights on instruments outside the published Top-K: {', '.join(off[:5])}",
            readings=readings,
            observations=observations,
        )
    return ok(
        f"total allocation {total:.3f} <= {target:.2f}, weights only on the Top-K",
        readings=readings,
        observations=observations,
    )


def judge_cadence(
    payload: object,
    interval: float,
    max_age: float,
    now: float,
    market_open: bool,
    max_skew: float = 5.0,
    closure: str = "FX market closed",
) -> Verdict:
    """`interval` (or `interval_sec`) equals ALLOC_INTERVAL_SEC; `ts`, when present, is fresh
    while the market is open (allocator-lite keeps old weights while it is closed: `closure`
    says why, and the summary that its age was not judged), and never more than `max_skew`
    seconds in the future (a clock problem, never fresh)."""
    status = as_object(payload, f"allocator {STATUS_PATH}")
    raw = status.get("interval", status.get("interval_sec"))
    if raw is None:
        raise BadPayload(f"allocator {STATUS_PATH} has neither interval nor interval_sec")
    cadence = as_decimal(raw, "allocator interval")
    readings = (Reading(Measure.ALLOCATOR_INTERVAL, cadence),)
    if cadence != interval:
        return fail(
            Reason.MISMATCH,
            f"allocator-lite interval is {cadence:g}s, ALLOC_INTERVAL_SEC is {interval:g}s",
            readings=readings,
        )
    if "ts" in status and market_open:
        try:
            age = now - parse_timestamp(status["ts"])
        except TimestampError as err:
            raise BadPayload(f"allocator ts: {err}") from err
        if age > max_age:
            return fail(
                Reason.STALE,
                f"allocator-lite last cycle {age:.0f}s ago (max {max_age:.0f}s)",
                readings=readings,
            )
        if age < -max_skew:
            return error(
                Reason.CLOCK_SKEW,
                f"allocator-lite ts is {-age:.0f}s in the future (more than "
                f"QUANTOPS_MAX_CLOCK_SKEW_SECONDS {max_skew:g}): its clock or ours is wrong",
                readings=readings,
            )
    summary = f"allocator-lite cycles every {cadence:g}s"
    if "ts" in status and not market_open:
        summary += f"; its last cycle's age not judged: {closure}"
    return Verdict(Status.OK, Reason.NONE, summary, readings=readings)


async def check_allocator_topk(ctx: CheckContext) -> Verdict:
    """The count of `sep_allocator_selected == 1` is ALLOC_TOP_K."""
    metrics = await ctx.stack_metrics.read()
    seen = (s.labels.get("instrument", "") for s in metrics.series(ALLOCATOR_SELECTED))
    return with_unconfigured(
        judge_topk(metrics, ctx.thresholds.alloc_top_k), "allocator_topk", seen, ctx.instruments
    )


async def check_allocation_status(ctx: CheckContext) -> Verdict:
    """/api/risk/allocation-status: total within target, weights only on the published Top-K."""
    url = endpoint(ctx.api_url, ALLOCATION_STATUS_PATH)
    payload, metrics = await read_both(
        ctx.http.get_json(Dependency.API, url), ctx.stack_metrics.read()
    )
    t = ctx.thresholds
    with from_http(Dependency.API, url):
        weight_map = as_weight_map(payload, ALLOCATION_STATUS_PATH)
    verdict = judge_allocation_status(
        weight_map,
        selected(metrics),
        t.allocation_weights_scale,
        t.risk_alloc_target_pct,
        ctx.instruments,
    )
    return with_unconfigured(verdict, "allocation_status", weight_map, ctx.instruments)


async def check_allocator_cadence(ctx: CheckContext) -> Verdict:
    """allocator-lite /status reports ALLOC_INTERVAL_SEC and a fresh cycle."""
    url = endpoint(ctx.allocator_url, STATUS_PATH)
    payload = await ctx.http.get_json(Dependency.ALLOCATOR, url)
    now = ctx.clock()
    t = ctx.thresholds
    with from_http(Dependency.ALLOCATOR, url):
        verdict = judge_cadence(
            payload,
            t.alloc_interval_sec,
            t.allocator_max_age_seconds,
            now,
            ctx.calendar.is_open(now),
            t.max_clock_skew_seconds,
            closure_summary(ctx.calendar, now),
        )
    return judged_at(verdict, Dependency.ALLOCATOR, url)


async def check_allocator_health(ctx: CheckContext) -> Verdict:
    """allocator-lite /status answers JSON, and the backend's /health answers 200."""
    url = endpoint(ctx.allocator_url, STATUS_PATH)
    status, _health = await read_both(
        ctx.http.get_json(Dependency.ALLOCATOR, url),
        ctx.http.get_bytes(Dependency.API, endpoint(ctx.api_url, HEALTH_PATH)),
    )
    with from_http(Dependency.ALLOCATOR, url):
        as_object(status, f"allocator {STATUS_PATH}")
    return ok("allocator-lite /status and backend /health answer")


async def check_allocation_weights(ctx: CheckContext) -> Verdict:
    """`risk:allocation_weights` exists, parses and is non-empty; when it last changed."""
    read = await ctx.valkey.get(WEIGHTS_KEY)
    if read.missing and not read.wrong_type:
        return fail(
            Reason.MISSING,
            f"{WEIGHTS_KEY} is missing: allocator-lite has published nothing",
        )
    with from_valkey(WEIGHTS_KEY):
        if read.wrong_type:
            raise WrongType(f"{WEIGHTS_KEY} is not a STRING")
        weight_map = as_weight_map(decode_json(read.value, WEIGHTS_KEY), WEIGHTS_KEY)
    now = ctx.clock()
    # No timestamp is documented: the change time is measured by change detection (unknown
    # until the first change this process sees).
    changed = ctx.memory.changed_at(WEIGHTS_KEY, read.value, now)
    freshness = (Freshness(Source.ALLOCATION_WEIGHTS, "", changed),)
    if not weight_map:
        return Verdict(
            Status.FAIL, Reason.MISSING, f"{WEIGHTS_KEY} holds no weights", freshness=freshness
        )
    return ok(
        f"{len(weight_map)} weights published"
        + ("" if changed is None else f", last changed {now - changed:.0f}s ago"),
        freshness=freshness,
        observations={"count": len(weight_map)},
    )
