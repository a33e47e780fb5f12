"""The webhook events and the delivery record, one msgspec struct stored per delivery
(``Keys.webhook(id)``), encoded as JSON.

A delivery's id is its ``webhook-id``: derived from the job and the event, so the same event of
the same job is the same delivery however many times it is queued (a redelivered job queues it
again; the queue keeps the first), and a receiver deduplicates on it.
"""

from __future__ import annotations

import enum

import msgspec


class WebhookEvent(enum.StrEnum):
    """What a subscriber can be told; each payload's ``data`` is the job's view."""

    SUCCEEDED = "generation.succeeded"
    FAILED = "generation.failed"
    CANCELLED = "generation.cancelled"
    STARTED = "generation.started"
    """Charged and running; only when asked for by name (``webhookEvents``)."""


EVENTS: tuple[str, ...] = tuple(e.value for e in WebhookEvent)
DEFAULT_EVENTS: tuple[str, ...] = tuple(e for e in EVENTS if e != WebhookEvent.STARTED)
"""What a subscription without ``webhookEvents`` is told: how the job ended."""


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    """Queued, or waiting for its next retry."""
    DELIVERED = "delivered"
    """A 2xx answer was received."""
    FAILED = "failed"
    """Retries exhausted, or the target was refused (SSRF)."""


FINAL = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED})
MAX_ATTEMPTS_KEPT = 50  # the newest attempts a record keeps (the schedule makes 8 per round)


class Attempt(msgspec.Struct, kw_only=True, frozen=True):
    """One HTTP attempt of a delivery."""

    at: float
    """Unix time it started."""
    duration_ms: int
    """From resolving the host to the last byte read (or the failure)."""
    status_code: int | None = None
    """The receiver's HTTP status; None when no answer came."""
    error: str | None = None
    """Why it failed without an answer (timeout, refused address, connection error)."""
    response: str | None = None
    """The first bytes of the answer's body (at most ``RESPONSE_EXCERPT`` of them), never all of it."""


class WebhookDelivery(msgspec.Struct, kw_only=True):
    """One event for one endpoint, with everything needed to send it again."""

    id: str
    """The ``webhook-id`` header: stable across retries and resends of this event."""
    job_id: str
    user_id: str
    event: WebhookEvent
    url: str
    payload: str
    """The exact JSON body sent on every attempt (the signature covers these bytes)."""
    created_at: float
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: list[Attempt] = []
    round_tries: int = 0
    """Attempts since it was queued or last resent: where it is in the retry schedule."""
    next_at: float | None = None
    """Unix time its next attempt is due, while pending."""

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def delivery_id(job_id: str, event: WebhookEvent) -> str:
    """``msg_<job>_<succeeded|failed|cancelled|started>``: one per job and event."""
    return f"msg_{job_id}_{event.value.removeprefix('generation.')}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WebhookDelivery)


def encode(delivery: WebhookDelivery) -> bytes:
    return _encoder.encode(delivery)


def decode(data: bytes) -> WebhookDelivery:
    return _decoder.decode(data)
