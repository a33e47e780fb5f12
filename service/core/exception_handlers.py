"""One place that renders every error into the spec's body ``{statusCode, message, error}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from service.core.errors import (DATABASE_UNREACHABLE, QUEUE_UNREACHABLE, AppError, ServiceUnavailable,
                                 error_body)

log = structlog.get_logger(__name__)


def _respond(status: int, message: str | list[str], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(error_body(status, message), status_code=status, media_type=MediaType.JSON, headers=headers)


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    return _respond(exc.status_code, exc.message)


def _raw_body(request: Request[Any, Any, Any]) -> Any:
    # The body was parsed before validation failed; Litestar keeps it on the connection state.
    state = getattr(request, "_connection_state", None)
    value = getattr(state, "json", None)
    return None if value is None or type(value).__name__ == "EmptyType" else value


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A 400 listing every problem, in class-validator's words where the route knows them."""
    validate = request.route_handler.opt.get("validate_body")
    body = _raw_body(request)
    if validate is not None and body is not None:
        messages = validate(request, body)
        if messages:
            return _respond(400, messages)
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
    return _respond(exc.status_code, exc.detail, headers=exc.headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path)
    return _respond(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error")


def _outage(message: str) -> Callable[[Any, Exception], Any]:
    def handler(request: Any, exc: Exception) -> Any:
        log.warning("api.outage", path=request.url.path, error=str(exc) or type(exc).__name__)
        return app_error_handler(request, ServiceUnavailable(message))
    return handler


def outage_handlers() -> dict[type[Exception], Callable[[Any, Exception], Any]]:
    """Exception handlers that answer an unreachable Redis or database with the spec-shaped 503
    rather than a 500, wherever it surfaces (the rate limiter's Redis store, a database read)."""
    import asyncpg

    queue, database = _outage(QUEUE_UNREACHABLE), _outage(DATABASE_UNREACHABLE)
    return {RedisConnectionError: queue, RedisTimeoutError: queue,
            asyncpg.PostgresConnectionError: database, asyncpg.InterfaceError: database,
            asyncpg.exceptions.OperatorInterventionError: database,
            ConnectionError: _outage("Service temporarily unavailable: a backing service is unreachable")}


EXCEPTION_HANDLERS = {
    AppError: app_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
    **outage_handlers(),
}
