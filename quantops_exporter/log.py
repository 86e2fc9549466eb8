"""Logging: structlog events, one JSON line each (or a readable console line)."""

from __future__ import annotations

import logging
import sys

import structlog

from quantops_exporter import trace


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """Route structlog and the standard library (aiohttp, apscheduler) through one renderer."""
    renderers: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        trace.structlog_processor,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *renderers,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs every job start at INFO; the scheduler counts and logs misses itself.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # One access line per scrape is noise for a daemon scraped every 15 s.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
