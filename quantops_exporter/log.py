"""Logging: structlog events, one JSON line each (or a readable console line)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from quantops_exporter import trace
from quantops_exporter.redact import redact


def redact_values(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """No password in a URL reaches the log, whichever line quotes it (a safety net: the
    callers redact what they know to be a URL too)."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, list | tuple):
            event[key] = [redact(item) if isinstance(item, str) else item for item in value]
    return event


class _MalformedRequests(logging.Filter):
    """A malformed HTTP request is the client's problem, not ours: aiohttp logs each one as an
    ERROR with a traceback (a scanner's noise would page); it becomes a DEBUG line. Errors in
    our handlers stay ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname, record.exc_info = logging.DEBUG, "DEBUG", None
            record.msg = f"{record.msg}: {type(error).__name__}"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def _renderers(final: structlog.typing.Processor) -> list[structlog.typing.Processor]:
    # Tracebacks as plain text (never rich's, which prints local variables, secrets among
    # them), then redacted, then rendered.
    return [structlog.processors.format_exc_info, redact_values, final]


def _join_lists(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """logfmt has no lists: `checks=a,b` rather than a Python list's repr."""
    return {
        k: ",".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in event.items()
    }


_RENDERERS: dict[str, list[structlog.typing.Processor]] = {
    "json": _renderers(structlog.processors.JSONRenderer()),
    "logfmt": [
        structlog.processors.format_exc_info,
        redact_values,
        _join_lists,
        structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"]),
    ],
    "console": _renderers(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())),
}


def configure_logging(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library (aiohttp, apscheduler) through one renderer,
    to `stream` (default: stderr; the demo writes its daemon's log to a file)."""
    renderers = _RENDERERS.get(fmt) or _RENDERERS["console"]
    if fmt == "console" and stream is not None and not stream.isatty():
        renderers = _renderers(structlog.dev.ConsoleRenderer(colors=False))
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        trace.structlog_processor,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_values,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
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
    server = logging.getLogger("aiohttp.server")
    server.filters[:] = [f for f in server.filters if not isinstance(f, _MalformedRequests)]
    server.addFilter(_MalformedRequests())
    # One access line per scrape is noise for a daemon scraped every 15 s.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
