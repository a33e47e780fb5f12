"""``GET /video-gen/jobs/{id}``: what a job's owner (or an admin) sees of it."""

from __future__ import annotations

import msgspec

from service.generations.schemas import ImageToVideoResponse


class JobProgress(msgspec.Struct, rename="camel", kw_only=True):
    """The model's latest progress report."""

    message: str | None = None
    fraction: float | None = None
    """In [0, 1] when the model knows it."""
    queue_position: int | None = None
    """The provider's queue position, when it reports one."""


class JobError(msgspec.Struct, rename={"status_code": "statusCode"}, kw_only=True):
    """The spec's error body, exactly as the POST would have answered it."""

    status_code: int
    message: str | list[str]
    error: str


class JobView(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    """A job, from its generation record (once charged) or from Redis (before that).

    ``status`` is ``queued`` (accepted, not started), ``running`` (charged; generating or storing),
    ``succeeded`` or ``failed``. On success ``result`` is the spec's success body and
    ``downloadUrl`` a link valid for ``DOWNLOAD_URL_SECONDS``; on failure ``error`` is the spec's
    error body (a refund, when credits were charged, is already made).
    """

    job_id: str
    status: str
    stage: str | None = None
    """The record's own state: charged, generating, uploaded, succeeded or failed."""
    model: str | None = None
    attempts: int | None = None
    """How many times a worker started the generation."""
    progress: JobProgress | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: ImageToVideoResponse | None = None
    download_url: str | None = None
    download_expires_at: str | None = None
    error: JobError | None = None
