"""Accepting an image-to-video request: resolve the model, queue the job, await the outcome.

No credit moves and no storage is written here; the worker does both. What can be refused
without I/O (body, model, duration, key shape and ownership) is refused here, before a job is
queued.

- ``Idempotency-Key``: the key (per caller, 24 h) is bound to the first request's job when that
  job is queued. A retry with the same body gets that job's outcome, waiting for it while it runs;
  the same key with another body is a 422. Nothing is queued or charged twice.
- Outages: while Redis or the database is unreachable, or while the server shuts down, a new
  request is refused with the spec-shaped 503 before anything is queued, so no credit moves.
- Waiting: up to ``SYNC_WAIT_SECONDS`` for the outcome, then 202 with the job id; ``Prefer:
  respond-async`` asks for the 202 at once. A client that goes away loses nothing: the job runs on
  and ``GET /video-gen/jobs/{id}`` (or the same request with its Idempotency-Key) shows the outcome.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import msgspec

from models_registry.registry import ModelRegistry
from service.core.auth import Principal
from service.core.errors import AppError
from service.core.settings import Settings
from service.generations.schemas import GenerationPage, ImageToVideoRequest, ImageToVideoResponse, JobAccepted
from service.jobs import idempotency
from service.jobs.messages import JobMessage, JobReply
from service.core.db import ensure_database
from service.jobs.service import IdempotentRequest, JobQueue
from service.storage.base import Storage
from service.storage.images import check_source_key


@dataclass(frozen=True)
class Submission:
    principal: Principal
    request: ImageToVideoRequest
    respond_async: bool = False
    idempotency_key: str | None = None


def new_job_id() -> str:
    return uuid.uuid4().hex


def build_job(sub: Submission, registry: ModelRegistry, settings: Settings, job_id: str, reply_stream: str) -> JobMessage:
    """The job message for a valid request; spec-shaped 400s for what the model does not offer."""
    req = sub.request
    plugin, duration = registry.resolve(req.model or settings.model_default, req.duration)
    check_source_key(req.id, sub.principal.user_id, settings.source_key_prefix)
    return JobMessage(
        job_id=job_id, user_id=sub.principal.user_id, model=plugin.name, prompt=req.prompt,
        source_key=req.id, duration=duration, project_id=req.project_id, options=req.options or {},
        reply_stream=reply_stream, submitted_at=time.time(), idempotency_key=sub.idempotency_key,
    )


def accepted(job_id: str, status: str = "queued") -> JobAccepted:
    return JobAccepted(success=True, job_id=job_id, status=status, status_url=f"/video-gen/jobs/{job_id}")


def outcome(reply: JobReply) -> ImageToVideoResponse:
    """The worker's reply as the HTTP answer: the spec's success body, or its error raised."""
    if reply.status_code == 200:
        return msgspec.convert(reply.body, ImageToVideoResponse)
    raise AppError(reply.body.get("message", "Image-to-video generation failed"), reply.status_code)


async def request_video(sub: Submission, *, registry: ModelRegistry, queue: JobQueue,
                        settings: Settings) -> ImageToVideoResponse | JobAccepted:
    """Queue the generation (or find the one its Idempotency-Key names) and wait up to
    ``SYNC_WAIT_SECONDS`` for its outcome; 202 with the job id after that."""
    job_id = new_job_id()
    job = build_job(sub, registry, settings, job_id, queue.keys.reply_stream(job_id))
    idem: IdempotentRequest | None = None
    if sub.idempotency_key is not None:
        idem = IdempotentRequest(idempotency.check_key(sub.idempotency_key), idempotency.body_hash(sub.request))
        earlier = await queue.lookup(sub.principal.user_id, idem.key)
        if earlier is not None:
            return await _replay(earlier, idem, sub, queue, settings)
    await ensure_database()  # the worker needs it to charge: refuse now rather than queue a stuck job
    submitted = await queue.submit(job, idem)
    if not submitted.queued:  # a concurrent request with the same key won the race
        assert submitted.earlier is not None and idem is not None
        return await _replay(submitted.earlier, idem, sub, queue, settings)
    if sub.respond_async:
        return accepted(job_id)
    reply = await queue.wait(job.reply_stream, settings.sync_wait_seconds)
    return accepted(job_id) if reply is None else outcome(reply)


async def _replay(earlier: idempotency.IdempotencyRecord, idem: IdempotentRequest, sub: Submission,
                  queue: JobQueue, settings: Settings) -> ImageToVideoResponse | JobAccepted:
    """The first request's outcome for a retry with the same key (422 if the body differs)."""
    if earlier.body_hash != idem.body_hash:
        raise idempotency.mismatch(idem.key)
    if earlier.reply is not None:
        return outcome(earlier.reply)
    if sub.respond_async:
        return accepted(earlier.job_id, status="running")
    reply = await queue.wait(queue.keys.reply_stream(earlier.job_id), settings.sync_wait_seconds)
    return accepted(earlier.job_id, status="running") if reply is None else outcome(reply)


async def with_download_links(page: GenerationPage, storage: Storage, seconds: int) -> GenerationPage:
    """``page`` with a short-lived download link on every generation that has a stored video."""
    for item in page.items:
        if item.status == "succeeded" and item.s3_key:
            item.download_url = await storage.download_url(item.s3_key, expires_in=seconds)
    return page
