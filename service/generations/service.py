"""Accepting an image-to-video request: resolve the model, queue the job, await the outcome.

No credit moves, no storage is written and no SQL runs here; the worker does all of it. What can
be refused without I/O (body, model, duration, key shape and ownership) is refused here, before a
job is queued, and so is everything while the database or Redis is known to be away (503).

- Waiting: the job names this process's inbox; up to ``SYNC_WAIT_SECONDS`` for the reply, then
  202 with the job id. ``Prefer: respond-async`` asks for the 202 at once. A client that goes away
  loses nothing: the job runs on and ``GET /video-gen/jobs/{id}`` shows the outcome.
- ``Idempotency-Key``: bound to the first request's job when that job is queued. A retry with the
  same body gets that job's outcome (waiting for it while it runs); the same key with another
  body is a 422. Nothing is queued or charged twice.
- Backlog: past ``JOBS_STREAM_MAXLEN`` jobs on the stream (as this process last read it, once a
  second, plus what it queued since), new requests get a 503.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import msgspec

from models_registry.errors import ModelError
from models_registry.registry import ModelRegistry
from service.core import metrics, tracing
from service.core.auth import Principal
from service.core.db import health as database
from service.core.errors import QUEUE_FULL, TOO_MANY_WAITING, ServiceUnavailable, ShuttingDown, from_model_error
from service.core.request_context import current_request_id
from service.core.settings import Settings
from service.generations.schemas import ImageToVideoRequest, JobAccepted
from service.generations.status import JobStatus
from service.jobs import idempotency
from service.jobs.inbox import ReplyInbox
from service.jobs.messages import JobMessage, JobReply
from service.jobs.stream import IdempotentRequest, JobStream
from service.storage.images import check_source_key

Outcome = JobReply | JobAccepted


@dataclass(frozen=True)
class Submission:
    principal: Principal
    request: ImageToVideoRequest
    respond_async: bool = False
    idempotency_key: str | None = None


def accepted(job_id: str, status: JobStatus = JobStatus.QUEUED) -> JobAccepted:
    return JobAccepted(success=True, job_id=job_id, status=status, status_url=f"/video-gen/jobs/{job_id}")


class GenerationService:
    """The API's side of a generation (one per request, from the app's shared parts)."""

    def __init__(self, *, registry: ModelRegistry, stream: JobStream, inbox: ReplyInbox, settings: Settings) -> None:
        self.registry, self.stream, self.inbox, self.settings = registry, stream, inbox, settings

    def build_job(self, sub: Submission, job_id: str) -> JobMessage:
        """The job message for a valid request; spec-shaped 400s for what the model does not offer."""
        req = sub.request
        name = req.model or self.registry.default_model(self.settings.default_model)
        try:
            resolved = self.registry.resolve(name, req.duration, req.options)
        except ModelError as exc:
            raise from_model_error(exc) from None
        check_source_key(req.id, sub.principal.user_id, self.settings.source_key_prefix)
        return JobMessage(
            job_id=job_id,
            user_id=sub.principal.user_id,
            model=resolved.plugin.name,
            prompt=req.prompt,
            source_key=req.id,
            duration=resolved.duration,
            project_id=req.project_id,
            options=msgspec.to_builtins(resolved.options),
            inbox=None if sub.respond_async else self.inbox.name,
            submitted_at=time.time(),
            idempotency_key=sub.idempotency_key,
            request_id=current_request_id(),
            trace_context=tracing.current_context(),
            webhook_url=req.webhook_url,
            webhook_events=req.webhook_events,
        )

    async def request_video(self, sub: Submission) -> Outcome:
        """Queue the generation (or find the one its Idempotency-Key names) and wait up to
        ``SYNC_WAIT_SECONDS`` for its outcome; 202 with the job id after that."""
        job = self.build_job(sub, uuid.uuid4().hex)
        if self.inbox.closing:
            raise ShuttingDown()
        await database.check()  # the worker needs it to charge: refuse now rather than queue a stuck job
        if self.inbox.backlog >= self.settings.jobs_stream_maxlen:
            raise ServiceUnavailable(QUEUE_FULL)
        if not sub.respond_async and self.inbox.waiting >= self.inbox.capacity:
            raise ServiceUnavailable(TOO_MANY_WAITING)  # its descriptors are all but spent (core.limits)
        idem = None
        if sub.idempotency_key is not None:
            idem = IdempotentRequest(idempotency.check_key(sub.idempotency_key), idempotency.body_hash(sub.request))
            earlier = await self.stream.lookup(sub.principal.user_id, idem.key)
            if earlier is not None:
                return await self._replay(earlier, idem, sub)
        waiter = None if sub.respond_async else self.inbox.expect(job.job_id)
        try:
            submitted = await self.stream.submit(job, idem)
        except BaseException:
            if waiter is not None:
                self.inbox.forget(job.job_id, waiter)
            raise
        self.inbox.backlog += 1  # counted at once; the next read of the stream corrects it
        if submitted.earlier is None:
            metrics.JOBS_SUBMITTED.labels(job.model).inc()
        if submitted.earlier is not None:  # a concurrent request with the same key won the race
            if waiter is not None:
                self.inbox.forget(job.job_id, waiter)
            assert idem is not None
            return await self._replay(submitted.earlier, idem, sub)
        if waiter is None:
            return accepted(job.job_id)
        reply = await self.inbox.wait(job.job_id, waiter, self.settings.sync_wait_seconds)
        return accepted(job.job_id, JobStatus.RUNNING) if reply is None else reply

    async def _replay(
        self, earlier: idempotency.IdempotencyRecord, idem: IdempotentRequest, sub: Submission
    ) -> Outcome:
        """The first request's outcome for a retry with the same key (422 if the body differs).

        The first job's reply goes to the inbox of the process that queued it, so a retry that
        must wait polls the job's reply instead (every 0.1 s, slowing to 1 s).
        """
        if earlier.body_hash != idem.body_hash:
            raise idempotency.mismatch(idem.key)
        if earlier.reply is not None:
            return earlier.reply
        deadline = time.monotonic() + (0 if sub.respond_async else self.settings.sync_wait_seconds)
        pause = 0.1
        while True:
            if (reply := await self.stream.reply_of(earlier.job_id)) is not None:
                return reply
            if time.monotonic() >= deadline or self.inbox.closing:
                return accepted(earlier.job_id, JobStatus.RUNNING)
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 1.0)
