"""The simulated stack's HTTP side: the backend API (with its /metrics) and allocator-lite.

GET endpoints render the current World; the `/_sim/` endpoints (the simulator's own control
API) switch scenarios and show where the `week` schedule is (`GET /_sim/week`). API fault
scenarios are applied by one middleware to every backend path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from quantops_exporter.simulator.scenarios import DESCRIPTIONS, Scenario
from quantops_exporter.simulator.state import Variant
from quantops_exporter.simulator.week import Schedule, WeekState
from quantops_exporter.simulator.world import BUDGET, World


class SimulatedStack(Protocol):
    """What the HTTP side reads of the simulated stack (stack.SepSimulator)."""

    scenario: Scenario
    instruments: tuple[str, ...]
    variant: Variant
    clock: Callable[[], float]
    schedule: Schedule

    def world(self) -> World:
        """What the stack reports right now."""
        ...

    def week_state(self, now: float | None = None) -> WeekState | None:
        """Where the `week` schedule is now; None under `steady`."""
        ...

    async def kill_switch_engaged(self) -> bool | None:
        """The kill switch as the backend reads it from Valkey (None: Valkey unreachable)."""
        ...

    async def set_scenario(self, scenario: Scenario) -> None:
        """Switch scenario."""
        ...


SIM_KEY: web.AppKey[SimulatedStack] = web.AppKey("simulator")
OVERSIZED_BYTES = 5 * 1024 * 1024
_API_FAULTS = {Scenario.API_500, Scenario.API_GARBAGE, Scenario.API_SLOW, Scenario.API_OVERSIZED}


def _sim(request: web.Request) -> SimulatedStack:
    return request.app[SIM_KEY]


def _world(request: web.Request) -> World:
    return _sim(request).world()


@web.middleware
async def api_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the API fault scenarios to every backend endpoint (not to /_sim/), and the one
    endpoint fault to its endpoint."""
    scenario = _sim(request).scenario
    if scenario is Scenario.KILL_SWITCH_500 and request.path == "/api/kill-switch":
        return web.Response(status=500, text="Internal Server Error")
    if request.path.startswith("/_sim/") or scenario not in _API_FAULTS:
        return await handler(request)
    if scenario is Scenario.API_500:
        return web.Response(status=500, text="Internal Server Error")
    if scenario is Scenario.API_GARBAGE:
        return web.Response(
            text="<html><body>Please log in</body></html>", content_type="text/html"
        )
    if scenario is Scenario.API_OVERSIZED:
        return web.Response(
            body=b"[" + b"0," * (OVERSIZED_BYTES // 2) + b"0]", content_type="application/json"
        )
    await asyncio.sleep(3600)  # API_SLOW: the client's timeout ends it
    raise AssertionError("unreachable")


def build_backend(sim: SimulatedStack) -> web.Application:
    """The backend REST API on the stack's :8000 (a free port here)."""
    app = web.Application(middlewares=[api_faults])
    app[SIM_KEY] = sim
    for path, handler in {
        "/health": _health,
        "/api/kill-switch": _kill_switch,
        "/api/trading/mode": _mode,
        "/api/oanda/account": _account,
        "/api/oanda/positions": _positions,
        "/api/oanda/pricing": _pricing,
        "/api/candles": _candles,
        "/api/risk/allocation-status": _allocation_status,
        "/api/risk/budget": _budget,
        "/metrics": _metrics,
        "/_sim/scenario": _get_scenario,
        "/_sim/week": _get_week,
    }.items():
        app.router.add_get(path, handler)
    app.router.add_route("PUT", "/_sim/scenario/{name}", _set_scenario)
    app.router.add_route("POST", "/_sim/scenario/{name}", _set_scenario)
    return app


def build_allocator(sim: SimulatedStack) -> web.Application:
    """allocator-lite's status endpoint on the stack's :8100 (a free port here)."""
    app = web.Application()
    app[SIM_KEY] = sim
    app.router.add_get("/status", _allocator_status)
    return app


async def _health(request: web.Request) -> web.Response:
    sim = _sim(request)
    return web.json_response(
        {"status": "ok", "timestamp": sim.clock(), "enabled_pairs": list(sim.instruments)}
    )


async def _kill_switch(request: web.Request) -> web.Response:
    sim = _sim(request)
    engaged = await sim.kill_switch_engaged()
    if engaged is None:
        return web.json_response({"error": "valkey unavailable"}, status=503)
    if sim.scenario is Scenario.KILL_SWITCH_MISMATCH:
        engaged = not engaged  # an env override (KILL_SWITCH_FORCE_ENV) diverging from Valkey
    return web.json_response({"kill_switch": engaged})


async def _mode(request: web.Request) -> web.Response:
    world, sim = _world(request), _sim(request)
    if sim.variant.trading_mode_shape == "openapi":
        return web.json_response(
            {
                "practice_trading_enabled": False,
                "auto_trading_enabled": world.mode == "live",
                "environment": world.mode if world.oanda_connected else "none",
            }
        )
    return web.json_response({"mode": world.mode, "oanda_connected": world.oanda_connected})


async def _account(request: web.Request) -> web.Response:
    world, sim = _world(request), _sim(request)
    account = {
        "balance": "100000.0000",
        "NAV": "100012.5000",
        "currency": "USD",
        "marginUsed": f"{world.margin_used:.4f}",
        "marginAvailable": f"{world.margin_available:.4f}",
        "openPositionCount": len(world.positions),
    }
    body = (
        {"account": account, "lastTransactionID": "6360"}
        if sim.variant.account_wrapped
        else account
    )
    return web.json_response(body)


async def _positions(request: web.Request) -> web.Response:
    world = _world(request)
    return web.json_response(
        {
            "positions": [
                {
                    "instrument": inst,
                    "marginUsed": f"{margin:.4f}",
                    "long": {"units": "10000"},
                    "short": {"units": "0"},
                }
                for inst, margin in world.positions
            ]
        }
    )


async def _pricing(request: web.Request) -> web.Response:
    world, sim = _world(request), _sim(request)
    wanted = [i for i in request.query.get("instruments", "").split(",") if i]
    quotes = {}
    for index, inst in enumerate(wanted or world.instruments):
        mid = 1.1 + index / 10
        half = mid * world.spreads_bps.get(inst, 0.8) / 2e4
        quotes[inst] = (round(mid - half, 6), round(mid + half, 6))
    if sim.variant.pricing_shape == "map":
        return web.json_response(
            {
                "prices": {
                    i: {"bid": b, "ask": a, "mid": (a + b) / 2} for i, (b, a) in quotes.items()
                }
            }
        )
    return web.json_response(
        {
            "prices": [
                {
                    "type": "PRICE",
                    "instrument": i,
                    "tradeable": True,
                    "bids": [{"price": f"{b:.6f}", "liquidity": 1000000}],
                    "asks": [{"price": f"{a:.6f}", "liquidity": 1000000}],
                    "closeoutBid": f"{b:.6f}",
                    "closeoutAsk": f"{a:.6f}",
                }
                for i, (b, a) in quotes.items()
            ]
        }
    )


async def _candles(request: web.Request) -> web.Response:
    world = _world(request)
    limit = min(int(request.query.get("limit", "120")), world.candles)
    items = [
        {
            "time": datetime.fromtimestamp(world.newest_candle - 60 * k, UTC).isoformat(),
            "mid": {"o": "1.1000", "h": "1.1002", "l": "1.0998", "c": "1.1001"},
            "volume": 42,
            "complete": True,
        }
        for k in reversed(range(limit))
    ]
    return web.json_response({"items": items})


async def _allocation_status(request: web.Request) -> web.Response:
    return web.json_response({"weights": _world(request).weights})


async def _budget(request: web.Request) -> web.Response:
    return web.json_response(BUDGET)


async def _metrics(request: web.Request) -> web.Response:
    world = _world(request)
    lines = ["# TYPE sep_rolling_gate gauge"]
    lines += [
        f'sep_rolling_gate{{instrument="{i}",eligible="{int(i in world.eligible)}",buf="0.10"}} 1'
        for i in world.instruments
    ]
    lines.append("# TYPE sep_allocator_selected gauge")
    lines += [
        f'sep_allocator_selected{{instrument="{i}"}} {int(i in world.selected)}'
        for i in world.instruments
    ]
    lines.append("# TYPE sep_allocator_cooldown gauge")
    lines += [f'sep_allocator_cooldown{{instrument="{i}"}} 0' for i in world.instruments]
    lines += ["# TYPE sep_span_integrity_ok gauge", f"sep_span_integrity_ok {world.span_ok}"]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def _allocator_status(request: web.Request) -> web.Response:
    world = _world(request)
    return web.json_response(
        {
            "ts": int(world.allocator_ts),
            "interval": world.allocator_interval,
            "top_k": len(world.selected),
            "weights": world.weights,
        }
    )


async def _get_scenario(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "scenario": _sim(request).scenario.value,
            "scenarios": {s.value: DESCRIPTIONS[s] for s in Scenario},
        }
    )


async def _get_week(request: web.Request) -> web.Response:
    sim = _sim(request)
    now = sim.clock()
    state = sim.week_state(now)
    body: dict[str, object] = {"schedule": sim.schedule.value, "now": now}
    if state is not None:
        body |= state.as_json()
    return web.json_response(body)


async def _set_scenario(request: web.Request) -> web.Response:
    sim = _sim(request)
    try:
        await sim.set_scenario(Scenario(request.match_info["name"]))
    except ValueError as err:
        known = ", ".join(s.value for s in Scenario)
        return web.json_response({"error": f"{err}; scenarios: {known}"}, status=400)
    return web.json_response({"scenario": sim.scenario.value})
