"""HTTP handlers: /metrics, health and readiness, reload, the status page, the JSON API.

Every handler but a debug run reads the board; none runs a check or touches the stack. Each
request reads the configuration in force once (`generation_of`), so it sees one generation whole
even while a reload swaps the next one in.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import gzip_accepted

from quantops_exporter.basicauth import REALM, AuthBusy, FailedAttempts, ProvenCredentials
from quantops_exporter.daemon import Daemon, Refusal
from quantops_exporter.exposition import Busy, Exposition, exposition_of
from quantops_exporter.generation import Generation
from quantops_exporter.status_page import render_status_page
from quantops_exporter.views import outcome_json, state_json

DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("daemon")
PROBES = frozenset({"/-/healthy", "/-/ready"})
RELOAD_GATE_KEY: web.AppKey[list[float]] = web.AppKey("reload_gate")  # [last request, monotonic]
ATTEMPTS_KEY: web.AppKey[FailedAttempts] = web.AppKey("failed_attempts")
PROVEN_KEY: web.AppKey[ProvenCredentials] = web.AppKey("proven_credentials")
CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("clock")
EXPOSITION_KEY: web.AppKey[Exposition] = web.AppKey("exposition")
TELEMETRY_PATH_KEY: web.AppKey[str] = web.AppKey("telemetry_path")
GENERATION_KEY: web.RequestKey[Generation] = web.RequestKey("generation", Generation)
_REFUSALS = {
    Refusal.DISABLED: (403, "debug runs are off: set QUANTOPS_DEBUG_RUNS=true to enable them"),
    Refusal.UNKNOWN_CHECK: (404, "no check named {name!r}"),
    Refusal.TOO_SOON: (429, "{name} ran on demand moments ago; retry in {wait}s"),
    Refusal.NOT_OPEN: (503, "the sources are not open yet"),
    Refusal.BUSY: (
        409,
        "a run of {name} is going on (a check never overlaps itself); retry in {wait}s",
    ),
    Refusal.DUE: (
        409,
        "{name} runs on schedule before this run would surely end (a run on demand never "
        "makes a scheduled run skip); retry in {wait}s",
    ),
    Refusal.STOPPING: (503, "the daemon is stopping"),
}


def build_web_app(
    daemon: Daemon, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time
) -> web.Application:
    """The exporter's aiohttp application (lifecycles are attached by app.py)."""
    app = web.Application(middlewares=[generation_policy])
    app[DAEMON_KEY] = daemon
    app[CLOCK_KEY] = clock
    app[RELOAD_GATE_KEY] = [float("-inf")]
    # Both kept across reloads: a new web config resets no failure count, and forgets only the
    # proven credentials of users whose hash it changed.
    app[ATTEMPTS_KEY] = FailedAttempts()
    app[PROVEN_KEY] = ProvenCredentials()
    app[EXPOSITION_KEY] = exposition_of(registry)
    # --web.telemetry-path: read at start-up (a reload keeps the path, like the listen address)
    app[TELEMETRY_PATH_KEY] = daemon.generation.settings.web_telemetry_path
    app.router.add_get(app[TELEMETRY_PATH_KEY], metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload_config)
    app.router.add_put("/-/reload", reload_config)
    app.router.add_get("/api/v1/checks", list_checks)
    app.router.add_get("/api/v1/checks/{name}", one_check)
    app.router.add_post("/api/v1/checks/{name}/run", run_now)
    app.router.add_get("/", status_page)
    return app


def generation_of(request: web.Request) -> Generation:
    """The configuration this request sees (read once, when it arrived)."""
    return request[GENERATION_KEY]


@web.middleware
async def generation_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Fix the request's generation, then apply its web config: credentials, headers."""
    generation = request.app[DAEMON_KEY].generation
    request[GENERATION_KEY] = generation
    refusal = await _authenticate(request, generation)
    response = refusal if refusal is not None else await handler(request)
    response.headers.update(generation.headers)
    return response


async def _authenticate(request: web.Request, generation: Generation) -> web.Response | None:
    """401 for wrong credentials, 429 for a client with too many recent failures (or when
    password checks are queued up); None when the request may go on."""
    auth = generation.auth
    if auth is None:
        return None
    if request.path in PROBES and not generation.settings.web_probes_need_auth:
        return None
    attempts, client = request.app[ATTEMPTS_KEY], request.remote or "unknown"
    proven = request.app[PROVEN_KEY]
    header = request.headers.get("Authorization")
    wait = attempts.retry_after(client) if header else 0.0  # no credentials: no hashing
    if wait > 0 and not auth.known_good(header, proven):
        return _too_many(f"too many failed logins from {client}", wait)
    try:
        if await auth.allowed(header, proven):
            return None
    except AuthBusy:
        return _too_many("too many password checks in progress", 1.0)
    if header:
        attempts.failed(client)
    return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": REALM})


def _too_many(why: str, wait: float) -> web.Response:
    return web.Response(
        status=429,
        text=f"{why}; retry in {wait:.0f}s\n",
        headers={"Retry-After": str(max(1, round(wait)))},
    )


async def metrics(request: web.Request) -> web.Response:
    """The exposition: bytes stored by the last render, the live samples appended
    (exposition.py); OpenMetrics when the scraper asks for it, gzip when it accepts it; 429 when
    ?name[]= filterings come faster than the exposition takes them."""
    try:
        served = await request.app[EXPOSITION_KEY].serve(
            ",".join(request.headers.getall(hdrs.ACCEPT, [])),
            gzip=gzip_accepted(",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, []))),
            names=request.query.getall("name[]", []),
        )
    except Busy as busy:
        return _too_many(str(busy), busy.retry_after)
    headers = {hdrs.CONTENT_TYPE: served.content_type}
    if served.gzipped:
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    return web.Response(body=served.body, headers=headers)


async def healthy(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    """200 once every enabled check has run once; 503 before (naming the checks only to an
    authenticated client: the probes may be open to anyone)."""
    board = request.app[DAEMON_KEY].board
    if board.ready():
        return web.Response(text="Ready\n")
    waiting = [n for n, s in board.states.items() if s.check.enabled and s.latest is None]
    generation = generation_of(request)
    if generation.auth is not None and not generation.settings.web_probes_need_auth:
        return web.Response(status=503, text=f"Not ready: waiting for {len(waiting)} checks\n")
    return web.Response(status=503, text=f"Not ready: waiting for {', '.join(waiting)}\n")


async def reload_config(request: web.Request) -> web.Response:
    """Re-read the configuration (like SIGHUP); 500 with the reason when it is refused.

    Off unless enabled (as Prometheus's --web.enable-lifecycle); refuses what a web page in an
    operator's browser could send (a cross-site request, a form), and more than one request per
    QUANTOPS_RELOAD_MIN_INTERVAL_SECONDS.
    """
    settings = generation_of(request).settings
    if not settings.web_enable_lifecycle:
        return web.Response(
            status=403,
            text="the lifecycle API is off: start with --web.enable-lifecycle (or "
            "QUANTOPS_WEB_ENABLE_LIFECYCLE=true), or send SIGHUP\n",
        )
    refusal = _cross_site(request)
    if refusal is not None:
        return web.Response(status=403, text=refusal + "\n")
    if request.content_type in _FORM_TYPES and request.headers.get("Content-Type"):
        return web.Response(status=415, text=f"{request.content_type} is refused: send no body\n")
    now, last = time.monotonic(), request.app[RELOAD_GATE_KEY]
    wait = settings.reload_min_interval_seconds - (now - last[0])
    if wait > 0:
        return web.Response(
            status=429,
            text=f"a reload was requested moments ago; retry in {wait:.1f}s\n",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    last[0] = now
    result = await request.app[DAEMON_KEY].reload()
    return web.Response(status=200 if result.ok else 500, text=result.message + "\n")


# What an HTML form can send without a CORS preflight.
_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}


def _cross_site(request: web.Request) -> str | None:
    """Why `request` looks sent by another site's page, or None."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return "cross-site request refused (Origin is not this host)"
    return None


async def list_checks(request: web.Request) -> web.Response:
    """The board as JSON: one object per configured check."""
    states = request.app[DAEMON_KEY].board.states
    return web.json_response({"checks": [state_json(s) for s in states.values()]})


async def one_check(request: web.Request) -> web.Response:
    """One check's latest outcome with its observations and recent history."""
    name = request.match_info["name"]
    state = request.app[DAEMON_KEY].board.states.get(name)
    if state is None:
        return _error(404, f"no check named {name!r}")
    return web.json_response(state_json(state, history=True))


async def run_now(request: web.Request) -> web.Response:
    """Run one check now and return its outcome and trace (not recorded on the board)."""
    name = request.match_info["name"]
    run = await request.app[DAEMON_KEY].debug_run(name)
    if run.refused is not None or run.outcome is None:
        status, message = _REFUSALS[run.refused or Refusal.NOT_OPEN]
        wait = max(1, math.ceil(run.retry_after))  # whole seconds, never too early
        response = _error(status, message.format(name=name, wait=wait))
        if run.refused in (Refusal.TOO_SOON, Refusal.BUSY, Refusal.DUE):
            response.headers["Retry-After"] = str(wait)
        return response
    return web.json_response(
        {"outcome": outcome_json(run.outcome), "trace": list(run.trace), "recorded": False},
        dumps=_dumps,
    )


async def status_page(request: web.Request) -> web.Response:
    """The runbook board as a page."""
    generation = generation_of(request)
    page = render_status_page(
        request.app[DAEMON_KEY].board.states,
        generation.calendar,
        now=request.app[CLOCK_KEY](),
        runbook_url=generation.settings.runbook_url,
        telemetry_path=request.app[TELEMETRY_PATH_KEY],
    )
    return web.Response(text=page, content_type="text/html")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
