"""Accepting an image-to-video request: resolve the model, queue the job, await the outcome.

No credit moves and no storage is written here; the worker does both. What can be refused
without I/O (body, model, duration, key shape and ownership) is refused here, before a job is
queued.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from models_registry.registry import ModelRegistry
from service.core.auth import Principal
from service.core.errors import AppError
from service.core.settings import Settings
from service.generations.schemas import ImageToVideoRequest, ImageToVideoResponse, JobAccepted
from service.jobs.messages import JobMessage, JobReply
from service.jobs.service import JobQueue
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


def accepted(job_id: str) -> JobAccepted:
    return JobAccepted(success=True, job_id=job_id, status="queued", status_url=f"/video-gen/jobs/{job_id}")


def outcome(reply: JobReply) -> ImageToVideoResponse:
    """The worker's reply as the HTTP answer: the spec's success body, or its error raised."""
    if reply.status_code == 200:
        import msgspec

        return msgspec.convert(reply.body, ImageToVideoResponse)
    raise AppError(reply.body.get("message", "Image-to-video generation failed"), reply.status_code)


async def request_video(sub: Submission, *, registry: ModelRegistry, queue: JobQueue,
                        settings: Settings) -> ImageToVideoResponse | JobAccepted:
    """Queue the generation and wait up to ``SYNC_WAIT_SECONDS`` for it (202 after that)."""
    job_id = new_job_id()
    job = build_job(sub, registry, settings, job_id, queue.keys.reply_stream(job_id))
    await queue.submit(job)
    if sub.respond_async:
        return accepted(job_id)
    reply = await queue.wait(job, settings.sync_wait_seconds)
    return accepted(job_id) if reply is None else outcome(reply)
