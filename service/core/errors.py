"""One error hierarchy for the API and the workers.

Every error the service returns is an ``AppError`` rendered into the spec's body
``{"statusCode", "message", "error"}``; workers turn the same errors into the job's reply, so a
failure looks the same whether it happened in the request handler or in a worker.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec


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

    def body(self) -> dict[str, Any]:
        """The spec's error body."""
        return error_body(self.status_code, self.message)


# Where Python's reason phrase differs from the one the original (NestJS) API sends.
_PHRASES = {413: "Payload Too Large"}


def error_body(status_code: int, message: str | list[str]) -> dict[str, Any]:
    """``{"statusCode", "message", "error"}`` with the standard reason phrase as ``error``."""
    try:
        phrase = _PHRASES.get(status_code) or HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    return {"statusCode": status_code, "message": message, "error": phrase}


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


class IdempotencyMismatch(AppError):
    status_code = 422


class ServiceUnavailable(AppError):
    status_code = 503


QUEUE_UNREACHABLE = "Service temporarily unavailable: the job queue is unreachable"
DATABASE_UNREACHABLE = "Service temporarily unavailable: the database is unreachable"


class GenerationFailed(AppError):
    """The spec's 500: ``Image-to-video generation failed: <details>``."""

    status_code = 500

    def __init__(self, details: str) -> None:
        super().__init__(f"Image-to-video generation failed: {details}")
        self.details = details


class ProviderRejected(BadRequest):
    """The provider refused the input (content policy, validation): a client error, refunded."""


class RetryableProviderError(AppError):
    """A transient provider failure (429, 5xx, network) worth another try."""

    status_code = 503
