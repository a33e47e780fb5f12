"""One place that renders every error into the spec's body ``{statusCode, message, error}``."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import RedisError

from service.core import db
from service.core.errors import DATABASE_UNREACHABLE, QUEUE_UNREACHABLE, AppError, ServiceUnavailable, error_body
from service.core.transient import POSTGRES_OUTAGES, is_transient

log = structlog.get_logger(__name__)


def _respond(status: int, message: str | list[str], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(error_body(status, message), status_code=status, media_type=MediaType.JSON, headers=headers)


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    return _respond(exc.status_code, exc.message)


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A 400 listing every problem Litestar found (bodies are checked before, in ``validation.py``)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in extra] or [exc.detail]
    return _respond(400, messages)


def _malformed_json(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (msgspec.DecodeError, SerializationException)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 400 and _malformed_json(exc):
        return _respond(400, f"Malformed JSON body: {exc.detail}")
    if exc.status_code == 429 and exc.headers and "RateLimit-Reset" in exc.headers:
        # Litestar's limiter sends the IETF draft's RateLimit-* fields; clients and proxies know Retry-After
        exc.headers["Retry-After"] = str(max(int(exc.headers["RateLimit-Reset"]), 1))
    if exc.status_code >= 500:  # Litestar's own 500s (a misconfiguration) say nothing to clients
        log.error("http_error", path=request.url.path, status=exc.status_code, detail=exc.detail)
        return _respond(exc.status_code, "Internal server error" if exc.status_code == 500 else exc.detail)
    return _respond(exc.status_code, exc.detail, headers=exc.headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path)
    return _respond(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error")


def outage_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """An unreachable Redis or database, wherever it surfaced (a read, the rate limiter's store):
    the spec-shaped 503, not a 500. A database failure also marks it down for new submissions."""
    log.warning("api.outage", path=request.url.path, error=str(exc) or type(exc).__name__)
    if isinstance(exc, RedisError):
        return app_error_handler(request, ServiceUnavailable(QUEUE_UNREACHABLE))
    # asyncpg raises the socket's own OSError when it cannot open a connection
    db.health.lost(exc)
    return app_error_handler(request, ServiceUnavailable(DATABASE_UNREACHABLE))


def _dispatch(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return outage_handler(request, exc) if is_transient(exc) else internal_error_handler(request, exc)


EXCEPTION_HANDLERS = {
    AppError: app_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_exception_handler,
    RedisError: _dispatch,
    OSError: _dispatch,
    **dict.fromkeys(POSTGRES_OUTAGES, outage_handler),
    Exception: internal_error_handler,
}
