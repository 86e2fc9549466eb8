"""HTTP handlers: /metrics, health and readiness, the JSON board, and a landing page.

Every handler reads the board; none runs a check or touches the stack.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from quantops_exporter import __version__
from quantops_exporter.board import Board, CheckState
from quantops_exporter.checks.base import Outcome

BOARD_KEY = web.AppKey("board", Board)


def build_web_app(board: Board, registry: CollectorRegistry) -> web.Application:
    """The exporter's aiohttp application (lifecycles are attached by app.py)."""
    app = web.Application()
    app[BOARD_KEY] = board
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/api/v1/checks", list_checks)
    app.router.add_get("/", index)
    return app


async def healthy(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    """200 once every enabled check has run once; 503 before."""
    board = request.app[BOARD_KEY]
    if board.ready():
        return web.Response(text="Ready\n")
    waiting = [n for n, s in board.states.items() if s.check.enabled and s.latest is None]
    return web.Response(status=503, text=f"Not ready: waiting for {', '.join(waiting)}\n")


async def list_checks(request: web.Request) -> web.Response:
    """The board as JSON: one object per configured check."""
    board = request.app[BOARD_KEY]
    return web.json_response({"checks": [state_json(s) for s in board.states.values()]})


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """An outcome as the JSON the API and `check --json` share."""
    return {
        "check": outcome.check,
        "status": outcome.status.value,
        "reason": outcome.reason.value,
        "summary": outcome.summary,
        "expected": outcome.expected,
        "started_at": outcome.started_at,
        "duration_seconds": round(outcome.duration, 6),
        "observations": dict(outcome.observations),
    }


def state_json(state: CheckState) -> dict[str, Any]:
    """One check's row on the board."""
    check = state.check
    row: dict[str, Any] = {
        "check": check.name,
        "runbook": check.runbook,
        "section": check.section,
        "description": check.description,
        "enabled": check.enabled,
        "interval_seconds": check.interval,
        "timeout_seconds": check.timeout,
        "status": None,
        "reason": None,
        "summary": "not run yet",
        "last_success_at": state.last_success_at,
    }
    if state.latest is not None:
        row |= outcome_json(state.latest)
    return row


async def index(request: web.Request) -> web.Response:
    """A plain landing page linking the endpoints, with the board as a table."""
    board = request.app[BOARD_KEY]
    rows = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            *(
                html.escape(str(v))
                for v in (
                    name,
                    state.latest.status if state.latest else "pending",
                    state.latest.reason if state.latest else "",
                    state.latest.summary if state.latest else "not run yet",
                    state.check.runbook,
                )
            )
        )
        for name, state in board.states.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quantops-exporter</title>
<meta http-equiv="refresh" content="10"></head>
<body><h1>quantops-exporter {html.escape(__version__)}</h1>
<p><a href="/metrics">Metrics</a> · <a href="/api/v1/checks">Checks (JSON)</a> ·
<a href="/-/healthy">Healthy</a> · <a href="/-/ready">Ready</a></p>
<table><thead><tr><th>Check</th><th>Status</th><th>Reason</th><th>Summary</th><th>Runbook</th>
</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""
    return web.Response(text=page, content_type="text/html")
