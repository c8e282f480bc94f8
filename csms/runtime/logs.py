"""structlog setup: console lines in development, JSON in production."""

from __future__ import annotations

import logging
import sys

import structlog

from csms.config import LogSettings

__all__ = ["configure_logging"]


def configure_logging(settings: LogSettings) -> None:
    level = logging.getLevelName(settings.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if settings.format == "json" else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library loggers (websockets, uvicorn, alembic) go through the standard logging module.
    logging.basicConfig(
        level=max(level, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
