"""structlog setup: JSON lines for machines (production, containers), a readable renderer on a TTY.

Events are constant snake_case names with key-value fields (STYLE rule 10); context such as the
chain or protocol is bound once per task with ``structlog.contextvars``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(
    json_lines: bool | None = None, stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """``json_lines=None`` picks JSON unless ``stream`` is a terminal."""
    out = stream if stream is not None else sys.stderr
    as_json = not out.isatty() if json_lines is None else json_lines
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
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
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
