"""The swappable part of the daemon: catalog, open sources and scheduler, reloadable live.

SIGHUP and POST /-/reload re-read the settings (and --env-file); a configuration that does not
validate is refused and the running one stays. The board keeps the history of every check that
remains; what a check remembers between runs (CheckMemory) survives too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog

from quantops_exporter.board import Board
from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import build_catalog
from quantops_exporter.checks.memory import CheckMemory
from quantops_exporter.config import ConfigError, Settings, mask_url
from quantops_exporter.context import calendar_for, freshness_limits, open_context, thresholds_for
from quantops_exporter.market import Calendar
from quantops_exporter.metrics import MetricsBundle
from quantops_exporter.scheduler import CheckScheduler
from quantops_exporter.sources.health import DependencyHealth
from quantops_exporter.web import DebugRuns, Live

log = structlog.get_logger("quantops_exporter.runtime")
Loader = Callable[[], Settings]
# These are bound at start-up (the listening socket, its TLS): a change needs a restart.
_RESTART_ONLY = ("listen_address", "web_config_file")


@dataclass(slots=True)
class _Generation:
    settings: Settings
    checks: tuple[Check, ...]
    stack: AsyncExitStack
    scheduler: CheckScheduler


class Runtime:
    """Opens sources and schedules checks for the current settings; reloads them."""

    def __init__(
        self,
        settings: Settings,
        *,
        board: Board,
        health: DependencyHealth,
        metrics: MetricsBundle,
        debug: DebugRuns,
        live: Live,
        loader: Loader | None = None,
        clock: Callable[[], float] = time.time,
        calendar: Calendar | None = None,
    ) -> None:
        self.settings = settings
        self._board, self._health, self._metrics = board, health, metrics
        self._debug, self._live = debug, live
        self._loader = loader or (lambda: settings)
        self._clock = clock
        self._calendar = calendar
        self._memory = CheckMemory()
        self._current: _Generation | None = None
        self._lock = asyncio.Lock()

    @property
    def checks(self) -> tuple[Check, ...]:
        """The catalog in force."""
        return self._current.checks if self._current else build_catalog(self.settings.overrides())

    async def start(self) -> None:
        """Open the sources and start the schedule for the current settings."""
        await self._open(self.settings)

    async def stop(self) -> None:
        """Stop the schedule (in-flight runs get their timeout) and close the sources."""
        current, self._current = self._current, None
        if current is None:
            return
        self._debug.ctx = None
        await current.scheduler.stop(max(c.timeout for c in current.checks))
        await current.stack.aclose()

    async def reload(self) -> tuple[bool, str]:
        """Re-read the settings and apply them; refuse (keeping the old) when they are invalid."""
        async with self._lock:
            try:
                new = self._loader()
            except ConfigError as err:
                self._metrics.reload.record(False)
                log.error(
                    "config_reload_failed",
                    error=str(err),
                    hint="the previous configuration keeps running",
                )
                return False, str(err)
            notes = [
                f"{name} changed: restart to apply it"
                for name in _RESTART_ONLY
                if getattr(new, name) != getattr(self.settings, name)
            ]
            await self.stop()
            await self._open(new)
            self.settings = new
            self._metrics.reload.record(True)
            log.info(
                "config_reloaded",
                valkey=mask_url(new.valkey_url),
                api=new.sep_api_url,
                checks=[c.name for c in self.checks if c.enabled],
                notes=notes,
            )
            return True, "; ".join(["reloaded", *notes])

    async def _open(self, settings: Settings) -> None:
        checks = build_catalog(settings.overrides())
        calendar = self._calendar or calendar_for(settings)
        stack = AsyncExitStack()
        ctx = await stack.enter_async_context(
            open_context(
                settings, self._health, clock=self._clock, memory=self._memory, calendar=calendar
            )
        )
        self._board.reconfigure(checks)
        self._metrics.outcomes.add_checks(checks)
        self._metrics.scheduler.add_checks(checks)
        self._metrics.collector.set_freshness_limits(freshness_limits(thresholds_for(settings)))
        self._debug.checks = {c.name: c for c in checks}
        self._debug.ctx = ctx
        self._live.calendar = calendar
        scheduler = CheckScheduler(checks, ctx, self._board, self._metrics.scheduler)
        scheduler.start()
        self._current = _Generation(settings, checks, stack, scheduler)
