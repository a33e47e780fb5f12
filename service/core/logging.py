"""Structured logging: Litestar's structlog plugin, at ``LOG_LEVEL``, without bodies or headers.

Request bodies carry prompts and image keys of paying users; the access log keeps only what an
operator needs (method, path, status).
"""

from __future__ import annotations

import logging

from litestar.logging.config import StructLoggingConfig, default_wrapper_class
from litestar.middleware.logging import LoggingMiddlewareConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin


def structlog_plugin(level: str) -> StructlogPlugin:
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    return StructlogPlugin(
        StructlogConfig(
            structlog_logging_config=StructLoggingConfig(wrapper_class=default_wrapper_class(numeric)),
            middleware_logging_config=LoggingMiddlewareConfig(
                request_log_fields=["path", "method"],
                response_log_fields=["status_code"],
                exclude=["^/health", "^/metrics"],
            ),
        )
    )
