"""Margin, budget and position caps: Pre-Open §4-§5, Troubleshooting step 3, Recovery."""

from __future__ import annotations

from collections.abc import Sequence

from quantops_exporter.checks.base import (
    CheckContext,
    from_http,
    from_valkey,
    read_both,
    with_unconfigured,
)
from quantops_exporter.checks.parsing import (
    as_decimal,
    as_list,
    as_object,
    as_weight_map,
    numeric_hash,
    unwrap,
)
from quantops_exporter.checks.recovery import (
    Margin,
    Position,
    over_cap,
    release_readings,
    sizing,
)
from quantops_exporter.checks.thresholds import WeightsScale
from quantops_exporter.checks.verdict import (
    Measure,
    Reading,
    Reason,
    Status,
    Verdict,
    fail,
    ok,
    reason_for,
)
from quantops_exporter.sources.errors import BadPayload, SourceError, WrongType
from quantops_exporter.sources.health import Dependency
from quantops_exporter.urls import endpoint

ACCOUNT_PATH = "/api/oanda/account"
POSITIONS_PATH = "/api/oanda/positions"
BUDGET_PATH = "/api/risk/budget"
ALLOCATION_STATUS_PATH = "/api/risk/allocation-status"
BUDGET_KEY = "risk:alloc_budget"
RECOVERY = (
    "Recovery: engage the kill switch (blocks adds, allows reductions), run "
    "bin/drain_overcap_only.sh --dry-run, close positions with a <=3% buffer until "
    "utilisation < 0.30, then review RISK_ALLOC_TARGET_PCT, Top-K and spreads"
)


def account_margin(payload: object) -> Margin:
    """marginUsed and marginAvailable from an OANDA account body (maybe wrapped)."""
    account = unwrap(payload, "account", ACCOUNT_PATH)
    used = as_decimal(account.get("marginUsed"), "account.marginUsed")
    available = as_decimal(account.get("marginAvailable"), "account.marginAvailable")
    if used < 0 or available < 0:
        raise BadPayload("account margins are negative")
    return Margin(used, available)


def margin_utilisation(payload: object) -> float:
    """marginUsed / (marginUsed + marginAvailable) from an OANDA account body (maybe wrapped)."""
    return account_margin(payload).ratio


def judge_margin(margin: Margin, high: float) -> Verdict:
    """Utilisation must stay below MARGIN_HYST_HIGH (at or above it the stack stops adding);
    above it, how much margin to release (Recovery §3)."""
    ratio = margin.ratio
    readings = (Reading(Measure.MARGIN_UTILISATION, ratio), *release_readings(margin, high))
    observations = {"margin_utilisation": round(ratio, 6), "limit": high}
    if ratio >= high:
        return fail(
            Reason.THRESHOLD,
            f"margin utilisation {ratio:.3f} >= MARGIN_HYST_HIGH {high:.2f}: "
            f"new entries are blocked; {sizing(margin, high)}",
            readings=readings,
            observations=observations,
        )
    return ok(
        f"margin utilisation {ratio:.3f} < {high:.2f}",
        readings=readings,
        observations=observations,
    )


def open_positions(payload: object) -> list[Position]:
    """Positions with non-zero units from `{positions: [...]}` (or a bare list)."""
    out = []
    for index, raw in enumerate(as_list(payload, ("positions",), POSITIONS_PATH)):
        row = as_object(raw, f"positions[{index}]")
        units = 0.0
        for side in ("long", "short"):
            leg = row.get(side)
            if isinstance(leg, dict):
                units += abs(as_decimal(leg.get("units", 0), f"{side}.units"))
        if "units" in row:
            units += abs(as_decimal(row["units"], "units"))
        if units == 0 and not any(k in row for k in ("long", "short", "units")):
            units = 1.0  # a position row without units: present means open
        if units > 0:
            out.append(
                Position(
                    str(row.get("instrument", "?")),
                    as_decimal(row.get("marginUsed", 0), "position marginUsed"),
                )
            )
    return out


def budget_from(fields: dict[str, float]) -> float:
    """The budget: the `budget` field, else target_pct x margin_available."""
    if "budget" in fields:
        return fields["budget"]
    if "margin_available" in fields and "target_pct" in fields:
        return fields["margin_available"] * fields["target_pct"]
    raise BadPayload("budget has neither 'budget' nor margin_available and target_pct")


def position_cap(budget: float, top_k: int, per_pos_pct: float) -> float:
    """The per-position cap min(budget / K, PM_MAX_PER_POS_PCT x budget)."""
    return min(budget / top_k, per_pos_pct * budget)


def judge_position_caps(
    positions: Sequence[Position],
    budget: float,
    top_k: int,
    per_pos_pct: float,
    instruments: Sequence[str],
) -> Verdict:
    """No open position's margin exceeds min(budget / K, PM_MAX_PER_POS_PCT x budget)."""
    cap = position_cap(budget, top_k, per_pos_pct)
    over = [p for p in positions if p.margin > cap]
    readings = [Reading(Measure.OPEN_POSITIONS, float(len(positions)))]
    readings += [
        Reading(Measure.POSITION_MARGIN_RATIO, p.margin / cap if cap else 0.0, (p.instrument,))
        for p in positions
        if p.instrument in instruments
    ]
    observations = {"cap": round(cap, 2), "budget": round(budget, 2), "positions": len(positions)}
    if over:
        listed = ", ".join(f"{p.instrument} {p.margin:.0f}" for p in over[:5])
        return fail(
            Reason.THRESHOLD,
            f"over the per-position cap {cap:.0f} = min(budget/K, "
            f"PM_MAX_PER_POS_PCT x budget): {listed}",
            readings=tuple(readings),
            observations=observations,
        )
    return ok(
        f"{len(positions)} open position(s) within the cap {cap:.0f}",
        readings=tuple(readings),
        observations=observations,
    )


async def read_budget(ctx: CheckContext) -> float:
    """The budget from HASH risk:alloc_budget, falling back to GET /api/risk/budget."""
    read = await ctx.valkey.hgetall(BUDGET_KEY)
    with from_valkey(BUDGET_KEY):
        if read.wrong_type:
            raise WrongType(f"{BUDGET_KEY} is not a HASH")
        if not read.missing:
            return budget_from(numeric_hash(read.value, BUDGET_KEY))
    url = endpoint(ctx.api_url, BUDGET_PATH)
    answer = await ctx.http.get_json(Dependency.API, url)
    with from_http(Dependency.API, url):
        payload = as_object(answer, BUDGET_PATH)
        return budget_from(
            {
                k: as_decimal(v, f"{BUDGET_PATH} {k}")
                for k, v in payload.items()
                if k in ("budget", "margin_available", "target_pct")
            }
        )


def judge_alloc_budget(fields: dict[str, float] | None) -> Verdict:
    """risk:alloc_budget exists with numeric fields."""
    if not fields:
        return fail(
            Reason.MISSING,
            f"{BUDGET_KEY} is missing or empty: PortfolioManager has no budget",
        )
    return ok(
        f"{BUDGET_KEY} has {len(fields)} numeric field(s)",
        observations={"fields": sorted(fields)},
    )


def total_allocation(weight_map: dict[str, float], scale: WeightsScale, target_pct: float) -> float:
    """Total allocation as a fraction of the budget, whichever way the weights are scaled."""
    total = sum(abs(w) for w in weight_map.values())
    normalized = scale is WeightsScale.NORMALIZED or (
        scale is WeightsScale.AUTO and abs(total - 1.0) <= 0.01
    )
    return total * target_pct if normalized else total


def judge_exposure(
    margin: Margin, allocation: float, high: float, target: float, positions: str = ""
) -> Verdict:
    """Recovery: margin utilisation or total allocation above 0.30 needs the recovery steps;
    the summary sizes step 3 (the margin to release) and names the positions over their cap
    (`positions`, from `over_cap`, when they could be read)."""
    ratio = margin.ratio
    # Margin utilisation and allocation are exported by their own checks; the release too.
    observations = {"margin_utilisation": round(ratio, 6), "total_allocation": round(allocation, 6)}
    problems = []
    if ratio > high:
        problems.append(f"margin utilisation {ratio:.3f} > {high:.2f}: {sizing(margin, high)}")
    if allocation > target + 1e-9:
        problems.append(f"total allocation {allocation:.3f} > {target:.2f}")
    if problems:
        return fail(
            Reason.THRESHOLD,
            "; ".join(problems + ([positions] if positions else [])) + ". " + RECOVERY,
            readings=release_readings(margin, high),
            observations=observations,
        )
    return ok(
        f"margin {ratio:.3f} and allocation {allocation:.3f} within caps",
        readings=release_readings(margin, high),
        observations=observations,
    )


async def check_margin_utilisation(ctx: CheckContext) -> Verdict:
    """Margin utilisation from /api/oanda/account is below MARGIN_HYST_HIGH."""
    url = endpoint(ctx.api_url, ACCOUNT_PATH)
    payload = await ctx.http.get_json(Dependency.API, url)
    with from_http(Dependency.API, url):
        margin = account_margin(payload)
    return judge_margin(margin, ctx.thresholds.margin_hyst_high)


async def check_position_caps(ctx: CheckContext) -> Verdict:
    """No open position uses more margin than min(budget/K, PM_MAX_PER_POS_PCT x budget)."""
    url = endpoint(ctx.api_url, POSITIONS_PATH)
    budget, payload = await read_both(read_budget(ctx), ctx.http.get_json(Dependency.API, url))
    t = ctx.thresholds
    with from_http(Dependency.API, url):
        positions = open_positions(payload)
    verdict = judge_position_caps(
        positions, budget, t.alloc_top_k, t.pm_max_per_pos_pct, ctx.instruments
    )
    return with_unconfigured(
        verdict, "position_caps", (p.instrument for p in positions), ctx.instruments
    )


async def check_alloc_budget(ctx: CheckContext) -> Verdict:
    """HASH risk:alloc_budget exists and every field is a number."""
    read = await ctx.valkey.hgetall(BUDGET_KEY)
    with from_valkey(BUDGET_KEY):
        if read.wrong_type:
            raise WrongType(f"{BUDGET_KEY} is not a HASH")
        fields = None if read.missing else numeric_hash(read.value, BUDGET_KEY)
    return judge_alloc_budget(fields)


async def check_exposure_within_cap(ctx: CheckContext) -> Verdict:
    """Margin utilisation and total allocation are both within 0.30 (Recovery procedure)."""
    account_url = endpoint(ctx.api_url, ACCOUNT_PATH)
    status_url = endpoint(ctx.api_url, ALLOCATION_STATUS_PATH)
    account, status = await read_both(
        ctx.http.get_json(Dependency.API, account_url),
        ctx.http.get_json(Dependency.API, status_url),
    )
    t = ctx.thresholds
    with from_http(Dependency.API, status_url):
        weights = as_weight_map(status, ALLOCATION_STATUS_PATH)
    with from_http(Dependency.API, account_url):
        margin = account_margin(account)
    allocation = total_allocation(weights, t.allocation_weights_scale, t.risk_alloc_target_pct)
    verdict = judge_exposure(margin, allocation, t.margin_hyst_high, t.risk_alloc_target_pct)
    if verdict.status is Status.OK:
        return verdict
    return judge_exposure(
        margin,
        allocation,
        t.margin_hyst_high,
        t.risk_alloc_target_pct,
        await positions_over_cap(ctx),
    )


async def positions_over_cap(ctx: CheckContext) -> str:
    """Which positions exceed their per-position cap, for the recovery summary; read only when
    the cap is exceeded, and what cannot be read is said, not raised (the verdict stands on
    the account and the allocation alone)."""
    try:
        budget, payload = await read_both(
            read_budget(ctx),
            ctx.http.get_json(Dependency.API, endpoint(ctx.api_url, POSITIONS_PATH)),
        )
        positions = open_positions(payload)
    except SourceError as err:
        return f"positions over their cap unknown ({reason_for(err)})"
    t = ctx.thresholds
    return over_cap(positions, position_cap(budget, t.alloc_top_k, t.pm_max_per_pos_pct))
