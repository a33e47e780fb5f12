"""The one logging pipeline: JSON or console lines, stdlib records with their tracebacks, bound
context on every line, and no deprecation warning from the project's own setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

from service.core.logging import configure_logging, structlog_plugin
from service.core.settings import Settings, project_root

SCRIPT = textwrap.dedent(
    """
    import logging, structlog
    from service.core.logging import configure_logging
    from service.core.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    structlog.contextvars.bind_contextvars(request_id="req-1")
    try:
        raise ValueError("the bucket said no")
    except ValueError:
        logging.getLogger("service.storage.s3").warning("upload failed", exc_info=True)
    structlog.get_logger("video_gen.test").info("job.done", job_id="j1", prompt="café", extra=object(), ids={1: 2})
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("botocore.credentials").info("Found credentials")  # below botocore's WARNING
    structlog.get_logger("video_gen.test").debug("too quiet")
    structlog.get_logger("video_gen.test").warning(
        "db.down", error="cannot reach postgresql://video_gen:hunter2@db:5432/x", authorization="Bearer abc"
    )
    """
)


def _run(**env: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", SCRIPT],
        cwd=project_root(),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == ""  # logs go to stderr only
    return done.stderr.splitlines()


def test_json_lines_carry_stdlib_tracebacks_and_the_bound_context() -> None:
    lines = [json.loads(line) for line in _run(LOG_FORMAT="json", LOG_LEVEL="INFO")]
    assert [line["event"] for line in lines] == ["upload failed", "job.done", "Started server process [42]", "db.down"]
    failed, done, started, down = lines
    assert down["error"] == "cannot reach postgresql://video_gen:***@db:5432/x" and down["authorization"] == "***"
    assert failed["level"] == "warning" and failed["logger"] == "service.storage.s3"
    assert failed["request_id"] == "req-1"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: the bucket said no" in failed["exception"]
    assert done["job_id"] == "j1" and done["request_id"] == "req-1" and done["logger"] == "video_gen.test"
    assert done["prompt"] == "café" and done["extra"].startswith("<object object at") and done["ids"] == {"1": 2}
    assert started["logger"] == "uvicorn.error" and started["level"] == "info"
    assert all(line["timestamp"].endswith("Z") for line in lines)


def test_auto_is_json_when_stderr_is_not_a_terminal() -> None:
    lines = _run(LOG_FORMAT="auto", LOG_LEVEL="INFO")
    assert json.loads(lines[1])["event"] == "job.done"


def test_console_lines_and_log_level() -> None:
    lines = _run(LOG_FORMAT="console", LOG_LEVEL="DEBUG")
    text = "\n".join(lines)
    assert not lines[0].startswith("{")
    assert "upload failed" in text and "ValueError: the bucket said no" in text
    assert "job.done" in text and "job_id=j1" in text and "request_id=req-1" in text
    assert "too quiet" in text  # DEBUG lets it through
    assert "Found credentials" not in text
    assert "hunter2" not in text and "Bearer abc" not in text


def test_the_logging_setup_and_the_app_raise_no_deprecation_warning() -> None:
    from service.app import create_app

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configure_logging("INFO", "json")
        structlog_plugin("INFO", "json")
        create_app(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []
