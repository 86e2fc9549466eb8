"""Who can reach what: logged at start-up and again after every reload.

`exposure` (info) names the scheme, the interfaces, the authentication and the endpoints;
`exposed_without_tls_or_auth` (warning) replaces it when anyone who reaches the port reads the
board: plain HTTP, no users, not bound to loopback. A reload can lead there (an explicit
`basic_auth_users: {}`), so it is said again then, not only at start-up.
"""

from __future__ import annotations

import structlog

from quantops_exporter.generation import Generation

log = structlog.get_logger("quantops_exporter.exposure")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def log_exposure(current: Generation, served: Generation | None = None) -> None:
    """Say plainly who can reach what: the users and endpoints of `current`, the socket (address
    and TLS, bound at start-up) and the metrics path (routed then) of `served` (the generation
    the server started with)."""
    socket = served or current
    settings, listen = current.settings, socket.settings.listen
    tls = socket.web.tls_server_config if socket.web is not None else None
    endpoints = [
        socket.settings.web_telemetry_path,
        "/",
        "/api/v1/checks",
        "/-/healthy",
        "/-/ready",
    ]
    if settings.debug_runs:
        endpoints.append("POST /api/v1/checks/{name}/run")
    if settings.web_enable_lifecycle:
        endpoints.append("POST /-/reload")
    exposure = {
        "scheme": "https" if tls else "http",
        "interfaces": listen.host or "all",
        "authentication": "basic" if current.auth is not None else "none",
        "client_certificates": tls.client_auth_type if tls else "none",
        "endpoints": endpoints,
    }
    if tls is None and current.auth is None and listen.host not in LOOPBACK:
        log.warning(
            "exposed_without_tls_or_auth",
            **exposure,
            hint="anyone who reaches this port reads the board; set QUANTOPS_WEB_CONFIG_FILE "
            "(TLS, basic auth) or bind 127.0.0.1",
        )
    else:
        log.info("exposure", **exposure)
