"""The exposure log names what is served: the endpoints at the paths the server routes."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from quantops_exporter.exposure import log_exposure
from tests.conftest import make_generation


@pytest.mark.parametrize("path", ["/metrics", "/internal/metrics", "/a/b/c"])
def test_the_exposure_log_names_the_telemetry_path_the_server_routes(path: str) -> None:
    """With --web.telemetry-path P the log lists P, the path routed at start-up, even after a
    reload whose configuration names another one (a reload keeps the route)."""
    served = make_generation(web_telemetry_path=path, listen_address="127.0.0.1:9110")
    reloaded = make_generation(web_telemetry_path="/reloaded", listen_address="127.0.0.1:9110")
    for current, socket in ((served, None), (reloaded, served)):
        with capture_logs() as logs:
            log_exposure(current, socket)
        (entry,) = logs
        assert entry["event"] == "exposure"
        assert entry["endpoints"][0] == path, entry
        assert "/reloaded" not in entry["endpoints"]
        if path != "/metrics":
            assert "/metrics" not in entry["endpoints"]
