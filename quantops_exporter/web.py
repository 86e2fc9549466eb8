"""HTTP handlers: /metrics, health and readiness, the status page, the JSON API, debug runs.

Every handler but a debug run reads the board; none runs a check or touches the stack.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from quantops_exporter.board import Board, CheckState
from quantops_exporter.checks.base import Check, CheckContext, Outcome
from quantops_exporter.market import Calendar
from quantops_exporter.runner import run_check
from quantops_exporter.status_page import render_status_page
from quantops_exporter.trace import capture


class DebugRuns:
    """On-demand runs of one check (POST /api/v1/checks/{name}/run): off unless enabled,
    at most one per check per `min_interval`, one at a time, never recorded on the board."""

    def __init__(
        self,
        checks: Iterable[Check],
        *,
        enabled: bool,
        min_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = {c.name: c for c in checks}
        self.enabled = enabled
        self.min_interval = min_interval
        self.ctx: CheckContext | None = None  # set while the sources are open
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._one_at_a_time = asyncio.Lock()

    def retry_after(self, name: str) -> float:
        """Seconds until `name` may run again (0 when it may run now)."""
        last = self._last.get(name)
        if last is None:
            return 0.0
        return max(0.0, self.min_interval - (self._monotonic() - last))

    async def run(self, check: Check) -> tuple[Outcome, list[dict[str, Any]]]:
        """Run `check` now with the daemon's sources; return its outcome and trace."""
        assert self.ctx is not None
        async with self._one_at_a_time:
            self._last[check.name] = self._monotonic()
            with capture() as events:
                outcome = await run_check(check, self.ctx)
        return outcome, events


class Live:
    """What a reload may change that the handlers read (the calendar; the reload itself)."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None


BOARD_KEY = web.AppKey("board", Board)
LIVE_KEY = web.AppKey("live", Live)
CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("clock")
RUNBOOK_KEY = web.AppKey("runbook_url", str)
DEBUG_KEY = web.AppKey("debug_runs", DebugRuns)


def build_web_app(
    board: Board,
    registry: CollectorRegistry,
    *,
    calendar: Calendar,
    debug: DebugRuns,
    runbook_url: str,
    clock: Callable[[], float] = time.time,
    middlewares: Iterable[Any] = (),
    live: Live | None = None,
) -> web.Application:
    """The exporter's aiohttp application (lifecycles are attached by app.py)."""
    app = web.Application(middlewares=list(middlewares))
    app[BOARD_KEY] = board
    app[LIVE_KEY] = live or Live(calendar)
    app[CLOCK_KEY] = clock
    app[RUNBOOK_KEY] = runbook_url
    app[DEBUG_KEY] = debug
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload_config)
    app.router.add_get("/api/v1/checks", list_checks)
    app.router.add_get("/api/v1/checks/{name}", one_check)
    app.router.add_post("/api/v1/checks/{name}/run", run_now)
    app.router.add_get("/", status_page)
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


async def reload_config(request: web.Request) -> web.Response:
    """Re-read the configuration (like SIGHUP); 500 with the reason when it is refused."""
    reload = request.app[LIVE_KEY].reload
    if reload is None:
        return _error(503, "reload is not available yet")
    ok, message = await reload()
    return web.Response(status=200 if ok else 500, text=message + "\n")


async def list_checks(request: web.Request) -> web.Response:
    """The board as JSON: one object per configured check."""
    board = request.app[BOARD_KEY]
    return web.json_response({"checks": [state_json(s) for s in board.states.values()]})


async def one_check(request: web.Request) -> web.Response:
    """One check's latest outcome with its observations and recent history."""
    state = request.app[BOARD_KEY].states.get(request.match_info["name"])
    if state is None:
        return _error(404, f"no check named {request.match_info['name']!r}")
    return web.json_response(state_json(state, history=True))


async def run_now(request: web.Request) -> web.Response:
    """Run one check now and return its outcome and trace (not recorded on the board)."""
    debug = request.app[DEBUG_KEY]
    name = request.match_info["name"]
    if not debug.enabled:
        return _error(403, "debug runs are off: set QUANTOPS_DEBUG_RUNS=true to enable them")
    check = debug.checks.get(name)
    if check is None:
        return _error(404, f"no check named {name!r}")
    wait = debug.retry_after(name)
    if wait > 0:
        response = _error(429, f"{name} ran on demand moments ago; retry in {wait:.0f}s")
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    if debug.ctx is None:
        return _error(503, "the sources are not open yet")
    outcome, events = await debug.run(check)
    return web.json_response(
        {"outcome": outcome_json(outcome), "trace": events, "recorded": False}, dumps=_dumps
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


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


def state_json(state: CheckState, *, history: bool = True) -> dict[str, Any]:
    """One check's row on the board, with its recent outcomes."""
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
    if history:
        row["history"] = [
            {
                "status": o.status.value,
                "reason": o.reason.value,
                "started_at": o.started_at,
                "duration_seconds": round(o.duration, 6),
            }
            for o in state.history
        ]
    return row


async def status_page(request: web.Request) -> web.Response:
    """The runbook board as a page."""
    app = request.app
    page = render_status_page(
        app[BOARD_KEY], app[LIVE_KEY].calendar, now=app[CLOCK_KEY](), runbook_url=app[RUNBOOK_KEY]
    )
    return web.Response(text=page, content_type="text/html")
