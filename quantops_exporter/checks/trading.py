"""Pre-Open Spin-Up §1 and Troubleshooting step 2: is the stack trading live?"""

from __future__ import annotations

from quantops_exporter.checks.base import CheckContext, from_http
from quantops_exporter.checks.parsing import as_object
from quantops_exporter.checks.verdict import Reason, Status, Verdict, fail
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.health import Dependency
from quantops_exporter.urls import endpoint

TRADING_MODE_PATH = "/api/trading/mode"


def judge_trading_mode(payload: object) -> Verdict:
    """`{mode: "live", oanda_connected: true}` (runbook) or the OpenAPI variant
    `{auto_trading_enabled: true, environment: "live"}`; anything else named in the summary."""
    document = as_object(payload, TRADING_MODE_PATH)
    if "mode" in document:
        mode, connected = document.get("mode"), document.get("oanda_connected")
        observations = {"mode": str(mode)[:20], "oanda_connected": connected is True}
        problems = []
        if mode != "live":
            problems.append(f"mode is {str(mode)[:20]!r}, not 'live'")
        if connected is not True:
            problems.append("OANDA is not connected (oanda_connected is not true)")
    elif "auto_trading_enabled" in document or "environment" in document:
        auto, env = document.get("auto_trading_enabled"), document.get("environment")
        observations = {"auto_trading_enabled": auto is True, "environment": str(env)[:20]}
        problems = []
        if auto is not True:
            problems.append("auto_trading_enabled is not true")
        if env != "live":
            problems.append(f"environment is {str(env)[:20]!r}, not 'live'")
    else:
        raise BadPayload(
            f"{TRADING_MODE_PATH}: neither mode/oanda_connected nor "
            "auto_trading_enabled/environment"
        )
    if problems:
        return fail(
            Reason.UNEXPECTED_VALUE,
            "; ".join(problems) + " (check LIVE_TRADING_ENABLED=1)",
            observations=observations,
        )
    return Verdict(
        Status.OK, Reason.NONE, "trading live, OANDA connected", observations=observations
    )


async def check_trading_mode(ctx: CheckContext) -> Verdict:
    """`GET /api/trading/mode` says live and connected to OANDA."""
    url = endpoint(ctx.api_url, TRADING_MODE_PATH)
    payload = await ctx.http.get_json(Dependency.API, url)
    with from_http(Dependency.API, url):
        return judge_trading_mode(payload)
