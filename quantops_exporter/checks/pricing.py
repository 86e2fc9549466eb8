"""Troubleshooting step 7: spreads within MAX_SPREAD_BPS (the spread guard blocks adds)."""

from __future__ import annotations

from collections.abc import Sequence

from quantops_exporter.checks.base import CheckContext, from_http, with_unconfigured
from quantops_exporter.checks.parsing import as_decimal, as_object
from quantops_exporter.checks.verdict import Measure, Reading, Reason, Verdict, fail, ok
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.health import Dependency
from quantops_exporter.urls import endpoint
from quantops_exporter.worker import off_loop

PRICING_PATH = "/api/oanda/pricing"


def spreads_bps(payload: object) -> dict[str, float]:
    """Spread in bps per instrument, (ask - bid) / mid x 1e4, from either shape the stack uses:
    the OANDA list `{prices: [{instrument, bids: [{price}], asks: [{price}]}]}` or the map
    `{prices: {INST: {bid, ask}}}`. Instruments without both sides are left out."""
    prices = as_object(payload, PRICING_PATH).get("prices")
    quotes: dict[str, tuple[float, float]] = {}
    if isinstance(prices, list):
        for index, raw in enumerate(prices):
            row = as_object(raw, f"prices[{index}]")
            bids, asks = row.get("bids") or [], row.get("asks") or []
            if isinstance(bids, list) and isinstance(asks, list) and bids and asks:
                bid = as_decimal(as_object(bids[0], "bid").get("price"), "bid price")
                ask = as_decimal(as_object(asks[0], "ask").get("price"), "ask price")
            elif "closeoutBid" in row and "closeoutAsk" in row:
                bid = as_decimal(row["closeoutBid"], "closeoutBid")
                ask = as_decimal(row["closeoutAsk"], "closeoutAsk")
            else:
                continue
            quotes[str(row.get("instrument", "?"))] = (bid, ask)
    elif isinstance(prices, dict):
        for inst, raw in prices.items():
            row = as_object(raw, f"prices.{inst}")
            quotes[str(inst)] = (
                as_decimal(row.get("bid"), "bid"),
                as_decimal(row.get("ask"), "ask"),
            )
    else:
        raise BadPayload(f"{PRICING_PATH}: 'prices' is neither a list nor a map")
    out = {}
    for inst, (bid, ask) in quotes.items():
        mid = (bid + ask) / 2
        if mid <= 0:
            raise BadPayload(f"{inst}: non-positive prices")
        out[inst] = (ask - bid) / mid * 1e4
    return out


def judge_spreads(spreads: dict[str, float], instruments: Sequence[str], max_bps: float) -> Verdict:
    """Every configured instrument's spread is within MAX_SPREAD_BPS."""
    readings = tuple(
        Reading(Measure.SPREAD_BPS, spreads[i], (i,)) for i in instruments if i in spreads
    )
    wide = [f"{i} {spreads[i]:.1f}" for i in instruments if spreads.get(i, 0.0) > max_bps]
    unquoted = [i for i in instruments if i not in spreads]
    if wide:
        return fail(
            Reason.THRESHOLD,
            f"spreads above MAX_SPREAD_BPS {max_bps:g} bps (the spread guard blocks "
            f"adds): {', '.join(wide)}",
            readings=readings,
        )
    note = f"; no quote for {', '.join(unquoted)}" if unquoted else ""
    return ok(
        f"{len(readings)} spreads within {max_bps:g} bps{note}",
        readings=readings,
    )


async def check_spread_guard(ctx: CheckContext) -> Verdict:
    """Spreads from /api/oanda/pricing are within MAX_SPREAD_BPS."""
    url = endpoint(ctx.api_url, PRICING_PATH)
    payload = await ctx.http.get_json(
        Dependency.API, url, {"instruments": ",".join(ctx.instruments)}
    )
    # A payload the worker cannot parse raises there; the error comes back through the await and
    # is located here, on the loop (judging the spreads raises nothing to locate).
    with from_http(Dependency.API, url):
        return await off_loop(_judge, payload, ctx.instruments, ctx.thresholds.max_spread_bps)


def _judge(payload: object, instruments: tuple[str, ...], max_bps: float) -> Verdict:
    """The spreads judged, in the worker thread (a quote per instrument: 1,000 of them)."""
    spreads = spreads_bps(payload)
    verdict = judge_spreads(spreads, instruments, max_bps)
    return with_unconfigured(verdict, "spread_guard", spreads, instruments)
