"""Reachability of the stack's stores: the precondition of every other check."""

from __future__ import annotations

from quantops_exporter.checks.base import CheckContext
from quantops_exporter.checks.verdict import Measure, Reading, Verdict, ok


async def check_valkey_ping(ctx: CheckContext) -> Verdict:
    """Valkey answers PING; report the round-trip latency."""
    latency = await ctx.valkey.ping()
    return ok(
        f"Valkey answered PING in {latency * 1000:.1f} ms",
        readings=(Reading(Measure.VALKEY_PING_LATENCY, latency),),
        observations={"latency_seconds": round(latency, 6)},
    )
