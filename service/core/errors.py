"""One error hierarchy for the API and the workers.

Every error the service returns is an ``AppError`` rendered into the spec's body
``{"statusCode", "message", "error"}``; workers turn the same errors into the job's reply, so a
failure looks the same whether it happened in the request handler or in a worker.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec

from models_registry import errors as model_errors


class ErrorBody(msgspec.Struct, rename="camel"):
    """Every error's body (documented in OpenAPI): ``message`` is a list for validation errors."""

    status_code: int
    message: str | list[str]
    error: str


class AppError(Exception):
    """An error with an HTTP status and a client-facing message (a string or a list)."""

    status_code: int = 500

    def __init__(self, message: str | list[str], status_code: int | None = None) -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> ErrorBody:
        """The spec's error body."""
        return error_body(self.status_code, self.message)


# Where Python's reason phrase differs from the one the original (NestJS) API sends.
_PHRASES = {413: "Payload Too Large"}


def error_body(status_code: int, message: str | list[str]) -> ErrorBody:
    """``{"statusCode", "message", "error"}`` with the standard reason phrase as ``error``."""
    try:
        phrase = _PHRASES.get(status_code) or HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    return ErrorBody(status_code=status_code, message=message, error=phrase)


class BadRequest(AppError):
    status_code = 400


class ValidationFailed(BadRequest):
    """Request validation: ``message`` is the list of class-validator style sentences."""


class InsufficientCredits(BadRequest):
    def __init__(self, required: int, available: int) -> None:
        super().__init__(f"Insufficient credits. Required: {required}, Available: {float(available)}")
        self.required = required
        self.available = available


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class IdempotencyMismatch(AppError):
    status_code = 422


class ServiceUnavailable(AppError):
    status_code = 503


QUEUE_UNREACHABLE = "Service temporarily unavailable: the job queue is unreachable"
QUEUE_FULL = "Service temporarily unavailable: too many jobs are waiting, try again later"
TOO_MANY_WAITING = "Service temporarily unavailable: too many requests are waiting on this server, try again later"
DATABASE_UNREACHABLE = "Service temporarily unavailable: the database is unreachable"


class GenerationFailed(AppError):
    """The spec's 500: ``Image-to-video generation failed: <details>``."""

    status_code = 500

    def __init__(self, details: str) -> None:
        super().__init__(f"Image-to-video generation failed: {details}")
        self.details = details


CANCELLED = "Image-to-video generation cancelled"


class Cancelled(Conflict):
    """A cancelled job's answer: a 409, whether the client waits on it, polls it or replays it."""

    def __init__(self, message: str = CANCELLED) -> None:
        super().__init__(message)


class ShuttingDown(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("Service temporarily unavailable: this server is shutting down")


class Transient(Exception):
    """An interruption that says nothing about the job (an outage, a lost write): retry it later."""


def from_model_error(exc: model_errors.ModelError) -> AppError:
    """The HTTP error for an error of the plugin contract (the one place they are mapped)."""
    if isinstance(exc, model_errors.InvalidOptions):
        return ValidationFailed(exc.messages)
    if isinstance(exc, (model_errors.UnknownModel, model_errors.UnsupportedDuration, model_errors.ModelUnavailable)):
        return ValidationFailed([exc.message])
    if isinstance(exc, model_errors.ProviderRejected):
        return BadRequest(exc.message)
    return GenerationFailed(exc.message)
