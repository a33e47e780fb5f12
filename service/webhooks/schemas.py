"""How a webhook delivery is shown to its job's owner and to admins (the job view, the console)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from service.webhooks.messages import Attempt, DeliveryStatus, WebhookDelivery


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AttemptOut(msgspec.Struct, rename="camel", kw_only=True):
    at: str
    duration_ms: int
    status_code: int | None
    """The receiver's answer; null when none came (then ``error`` says why)."""
    error: str | None
    response: str | None
    """The first bytes of the answer's body."""


class DeliveryOut(msgspec.Struct, rename="camel", kw_only=True):
    """One webhook delivery of a job: one event to one URL, with its attempts, oldest first."""

    id: str
    """The ``webhook-id`` every attempt carried."""
    event: str
    url: str
    status: DeliveryStatus
    """``pending`` (queued or waiting for a retry), ``delivered`` (a 2xx came) or ``failed``."""
    attempts: list[AttemptOut]
    next_attempt_at: str | None


def attempt_out(attempt: Attempt) -> AttemptOut:
    return AttemptOut(
        at=_iso(attempt.at) or "",
        duration_ms=attempt.duration_ms,
        status_code=attempt.status_code,
        error=attempt.error,
        response=attempt.response,
    )


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event=delivery.event.value,
        url=delivery.url,
        status=delivery.status,
        attempts=[attempt_out(a) for a in delivery.attempts],
        next_attempt_at=_iso(delivery.next_at) if delivery.status is DeliveryStatus.PENDING else None,
    )
