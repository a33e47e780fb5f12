"""Request and response bodies of the generation endpoints; the spec's exactly as it shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from service.core.errors import ErrorBody
from service.generations.status import GenerationStatus, JobStatus
from service.webhooks.schemas import DeliveryOut


class ImageToVideoRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """The spec's request body, plus the optional ``model`` and ``options`` of the plugin registry."""

    id: str
    """S3 key of the source image (under ``images/{user_id}/`` by default)."""
    prompt: str
    """Animation prompt."""
    duration: str | None = None
    """'5s', '8s' or '10s' (the model's durations); the model's default when absent."""
    project_id: str | None = None
    """Optional project identifier, stored on the generation record."""
    model: str | None = None
    """A model from ``GET /video-gen/models``; ``DEFAULT_MODEL`` when absent."""
    options: dict[str, Any] | None = None
    """The model's options (``GET /video-gen/models`` lists each one's type, allowed values and
    default); an unknown key or a wrong value is a 400 before anything is charged."""
    webhook_url: str | None = None
    """Where to POST the job's outcome, signed (Standard Webhooks); https unless ``WEBHOOK_ALLOW_HTTP``."""
    webhook_events: list[str] | None = None
    """Which events to send (``generation.succeeded``, ``generation.failed``, ``generation.cancelled``);
    all of them when absent."""


class Credits(msgspec.Struct):
    used: int
    balance: float


class ImageToVideoResponse(msgspec.Struct, rename="camel", kw_only=True):
    """The spec's 200 body."""

    success: bool
    s3_key: str
    model: str
    credits: Credits
    duration: str
    generation_time: int


class JobAccepted(msgspec.Struct, rename="camel", kw_only=True):
    """202: the generation goes on; poll ``statusUrl``."""

    success: bool
    job_id: str
    status: JobStatus
    status_url: str


class GenerationOut(msgspec.Struct, rename="camel", kw_only=True):
    """A generation record as users and admins see it."""

    id: str
    user_id: str
    project_id: str | None
    model: str
    prompt: str
    source_key: str
    requested_duration: str
    duration: str | None
    status: GenerationStatus
    s3_key: str | None
    credits_charged: int
    credits_refunded: int
    error: str | None
    generation_time: int | None
    created_at: str
    finished_at: str | None
    download_url: str | None = None
    """A short-lived link to the video (``DOWNLOAD_URL_SECONDS``), on succeeded generations."""


class GenerationPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[GenerationOut]
    next_cursor: str | None


class JobProgress(msgspec.Struct, rename="camel", kw_only=True):
    """The model's latest progress report."""

    message: str | None = None
    fraction: float | None = None
    """In [0, 1] when the model knows it."""
    queue_position: int | None = None
    """The provider's queue position, when it reports one."""


class JobView(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    """``GET /video-gen/jobs/{id}``: a job, from its generation record (once charged) or from Redis.

    ``status`` is ``queued`` (accepted, not charged yet), ``running``, ``succeeded``, ``failed`` or
    ``cancelled``. On success ``result`` is the spec's success body and ``downloadUrl`` a link valid
    for ``DOWNLOAD_URL_SECONDS``; on failure or cancel ``error`` is the spec's error body (a refund,
    when credits were charged, is already made; a cancel's is the 409 ``Image-to-video generation
    cancelled``).
    """

    job_id: str
    status: JobStatus
    model: str | None = None
    attempts: int | None = None
    """How many deliveries started or resumed the generation."""
    progress: JobProgress | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: ImageToVideoResponse | None = None
    download_url: str | None = None
    download_expires_at: str | None = None
    error: ErrorBody | None = None
    webhooks: list[DeliveryOut] | None = None
    """The job's webhook deliveries and their attempts (null when it has none; never in a webhook's own payload)."""


class WebhookPayload(msgspec.Struct, kw_only=True):
    """A webhook's body, as the Standard Webhooks spec suggests: the event, when it happened, and
    ``data``, the job's view (``GET /video-gen/jobs/{id}``) as it ended."""

    type: str
    timestamp: str
    data: JobView


def format_duration(seconds: float) -> str:
    """A probed length as the API spells durations: ``8s``; ``7.5s`` when it is not whole."""
    whole = round(seconds)
    if abs(seconds - whole) < 0.05:
        return f"{whole}s"
    return f"{seconds:.1f}s"


@dataclass(frozen=True)
class GenerationFilter:
    """Which generations to list: every given field must match (``since`` inclusive, ``until`` not)."""

    user_id: str | None = None
    status: GenerationStatus | None = None
    model: str | None = None
    project_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
