"""The request id, and the one access line per request.

Litestar has no request-id middleware, and its logging middleware writes a request line and a
response line (one per body chunk, for a stream) that do not join up; this one ASGI middleware,
the outermost, does both jobs:

- the id is the caller's ``X-Request-ID`` when it is a sane token (at most 128 characters of
  letters, digits and ``._:-``), else a new one; it is bound to every log line of the request
  (``structlog.contextvars``), returned in the ``X-Request-ID`` response header, readable with
  ``current_request_id()`` (the job message carries it to the worker);
- when the response is done, one ``http.request`` line: method, path, status, duration. Never the
  body, the query string or the headers: they carry prompts, image keys and tokens.
"""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.core.tracing import trace_ids

HEADER = "x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_QUIET_PATHS = ("/health", "/metrics")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = structlog.get_logger("video_gen.access")


def current_request_id() -> str | None:
    """The id of the HTTP request being handled in this context, if any."""
    return _request_id.get()


def request_id_from(header: str | None) -> str:
    """The caller's id when it is a sane token, else a fresh one (log lines stay one line)."""
    if header and _VALID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Binds the request id and writes the access line (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                sent = value.decode("latin-1")
                break
        request_id = request_id_from(sent)
        status = 500
        started = time.perf_counter()
        traced: dict[str, str] = {}

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                traced.update(trace_ids())  # the request's span is current here, not out where we log
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), request_id.encode())]
            await send(message)

        token = _request_id.set(request_id)
        # bind/reset rather than ``bound_contextvars``: no generator and context manager held per request
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)["request_id"]
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)
            path = scope["path"]
            if not path.startswith(_QUIET_PATHS) or status >= 500:
                access_log.info(
                    "http.request",
                    method=scope["method"],
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    **traced,
                )
            structlog.contextvars.reset_contextvars(request_id=bound)
