"""One logging pipeline for every process (API, worker, ``serve``, the CLI).

structlog's loggers and the standard library's (uvicorn, asyncpg, botocore, fal-client, Piccolo)
get the same processors and renderer and end on stderr: JSON lines, or readable console lines on a
terminal (``LOG_FORMAT``: ``auto``, ``json``, ``console``), at ``LOG_LEVEL``. The standard
library's records go through ``structlog.stdlib.ProcessorFormatter`` on one handler; structlog's
own lines (the API's access line and a worker's line per job, the ones written at every request)
are rendered by structlog and written straight to stderr (``StderrLogger``), about a quarter of
the cost of a trip through the standard library's record, handler and formatter. Both carry the
context bound with ``structlog.contextvars`` (``request_id`` in the API,
``job_id``/``user_id``/``model``/``request_id`` in a worker's job) and render tracebacks.

The API hands the same ``StructLoggingConfig`` to Litestar's structlog plugin, with its request
logging off: ``service.core.request_context`` writes the one access line per request. Request
bodies and headers are never logged: they carry prompts, image keys and tokens.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any

import msgspec
import structlog
from litestar.logging.config import LoggingConfig, StructLoggingConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from structlog.typing import Processor

from service.core.tracing import add_trace_ids

FORMATS = ("auto", "json", "console")
QUIET = {
    # Chatty at INFO about things an operator does not act on.
    "botocore": "WARNING",
    "aiobotocore": "WARNING",
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "asyncio": "WARNING",
    "piccolo": "WARNING",  # "Running Sqlite version 3.4" at every engine
    # uvicorn's access line duplicates ours; its own lifecycle lines stay.
    "uvicorn.access": "WARNING",
}


def level_number(level: str) -> int:
    """``LOG_LEVEL`` as a number (``INFO`` when it names no level)."""
    numeric = logging.getLevelName(level.upper())
    return numeric if isinstance(numeric, int) else logging.INFO


def wants_json(fmt: str) -> bool:
    """JSON unless asked for console lines, or ``auto`` on a terminal."""
    if fmt == "auto":
        return not sys.stderr.isatty()
    return fmt == "json"


def _shared_processors() -> list[Processor]:
    """What every record gets, structlog's and the standard library's alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        add_trace_ids,
    ]


_SECRET_KEYS = re.compile(r"authorization|token|secret|password|passwd|api_key|fal_key|cookie", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(\w+://[^/\s:@]*:)[^@\s/]+@")


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return _SECRET_KEYS.search(key) is not None  # the same few keys on every line: decided once


def redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A safety net for secrets: values of secret-named keys, and passwords inside URLs
    (``postgresql://user:***@host``), never reach a log line."""
    for key, value in event_dict.items():
        if _secret_key(key):
            event_dict[key] = "***"
        elif isinstance(value, str) and "@" in value:
            event_dict[key] = _URL_CREDENTIALS.sub(r"\1***@", value)
    return event_dict


def _renderers(as_json: bool) -> list[Processor]:
    """What turns a record into its line, behind the shared processors (both paths)."""
    if as_json:
        # exc_info becomes a "exception" string here; before this fix it reached the JSON encoder
        # as a tuple and the whole record was lost ("--- Logging error --- Unsupported type").
        return [
            _drop_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(serializer=_json, default=repr),
        ]
    return [
        _drop_meta,
        redact,
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
    ]


class StderrLogger:
    """The end of structlog's chain: writes each rendered line to ``sys.stderr`` in one call (so
    lines from threads never interleave with each other or the standard library's)."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # ``add_logger_name`` reads it

    def msg(self, message: str) -> None:
        stream = sys.stderr  # looked up per line: it may be replaced (a test's capture, a redirect)
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = fatal = exception = log = msg


def _stderr_logger(*args: Any) -> StderrLogger:
    return StderrLogger(str(args[0]) if args else "")


def _json(event_dict: dict[str, Any], default: Any) -> str:
    # msgspec: a tenth of json.dumps' time, and UTF-8 rather than \u escapes; ``default`` (repr)
    # renders what it cannot encode, as json.dumps would.
    return _ENCODER(default).encode(event_dict).decode()


@functools.lru_cache(maxsize=4)
def _ENCODER(default: Any) -> msgspec.json.Encoder:
    return msgspec.json.Encoder(enc_hook=default)


def _drop_meta(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The formatter's bookkeeping (absent on structlog's direct path), and uvicorn's ANSI copy of
    # the message.
    for key in ("_record", "_from_structlog", "color_message"):
        event_dict.pop(key, None)
    return event_dict


def logging_config(level: str = "INFO", fmt: str = "auto") -> StructLoggingConfig:
    """The one configuration: structlog and the standard library, through one formatter."""
    numeric = level_number(level)
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": _renderers(wants_json(fmt)),
        "foreign_pre_chain": _shared_processors(),
    }
    stdlib = LoggingConfig(
        logging_module="logging",
        formatters={"standard": formatter},
        handlers={
            "console": {"class": "logging.StreamHandler", "formatter": "standard", "stream": "ext://sys.stderr"},
            # Litestar adds its queue handler when this name is missing; we write directly.
            "queue_listener": {"class": "logging.NullHandler"},
        },
        loggers={
            "litestar": {"level": numeric, "handlers": ["console"], "propagate": False},
            **{name: {"level": max(numeric, level_number(quiet))} for name, quiet in QUIET.items()},
        },
        root={"handlers": ["console"], "level": numeric},
    )
    return StructLoggingConfig(
        processors=[*_shared_processors(), *_renderers(wants_json(fmt))],
        logger_factory=_stderr_logger,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
        standard_lib_logging_config=stdlib,
    )


def configure_logging(level: str = "INFO", fmt: str = "auto") -> StructLoggingConfig:
    """Configure this process's logging (idempotent); returns the config for Litestar's plugin."""
    config = logging_config(level, fmt)
    config.configure()
    assert config.standard_lib_logging_config is not None
    config.standard_lib_logging_config.configure()
    logging.captureWarnings(True)
    return config


def structlog_plugin(level: str = "INFO", fmt: str = "auto") -> StructlogPlugin:
    """Litestar's structlog plugin over the same configuration, its request logging off."""
    return StructlogPlugin(
        StructlogConfig(structlog_logging_config=logging_config(level, fmt), enable_middleware_logging=False)
    )
