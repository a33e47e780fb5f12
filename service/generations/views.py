"""What owners and admins see of generations: one job's view, and histories with download links.

A job is its generation record once charged, and what Redis knows before that (its owner record,
and the reply of a job refused before any credit moved). Owner or admin only; anyone else gets
the same 404 as for a job that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from service.core.auth import Principal
from service.core.errors import NotFound
from service.core.pagination import iso
from service.generations import repository
from service.generations.outcomes import decode_error, decode_success, record_error, reply_from_record
from service.generations.records import GenerationRecord
from service.generations.schemas import (
    GenerationFilter,
    GenerationOut,
    GenerationPage,
    JobProgress,
    JobView,
    format_duration,
)
from service.generations.status import TERMINAL, GenerationStatus, JobStatus
from service.jobs.messages import JobMessage, JobReply
from service.jobs.stream import JobStream
from service.storage.base import Storage
from service.webhooks.messages import WebhookEvent, delivery_id
from service.webhooks.queue import WebhookQueue
from service.webhooks.schemas import DeliveryOut, delivery_out

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"Job {job_id} not found")


async def describe_job(
    job_id: str,
    principal: Principal,
    *,
    stream: JobStream,
    storage: Storage,
    download_seconds: int,
    webhooks: WebhookQueue | None = None,
) -> JobView:
    """The job's view for its owner or an admin, with its webhook deliveries."""
    view = await _describe(job_id, principal, stream=stream, storage=storage, download_seconds=download_seconds)
    if webhooks is not None:
        view.webhooks = await deliveries_of(webhooks, job_id) or None
    return view


async def deliveries_of(webhooks: WebhookQueue, job_id: str) -> list[DeliveryOut]:
    """The webhook deliveries of a job (one per event it was told of)."""
    found = await webhooks.many([delivery_id(job_id, event) for event in WebhookEvent])
    return [delivery_out(d) for d in found]


async def outcome_view(job: JobMessage, reply: JobReply, *, storage: Storage, download_seconds: int) -> JobView:
    """The view of a job that just ended with ``reply`` (which Redis does not have yet): what a
    webhook tells of it."""
    record = await repository.get(job.job_id)
    if record is not None and record.status in TERMINAL:
        return await _from_record(record, None, storage, download_seconds, reply=reply)
    view = JobView(
        job_id=job.job_id,
        status=JobStatus.SUCCEEDED if reply.status_code == 200 else JobStatus.FAILED,
        model=job.model,
        submitted_at=iso(datetime.fromtimestamp(job.submitted_at, UTC)),
    )
    if reply.status_code != 200:  # refused before any credit moved: no record
        view.error = decode_error(reply)
    return view


async def record_view(record: GenerationRecord, *, storage: Storage, download_seconds: int) -> JobView:
    """The view of a charged job as its record says (a ``generation.started`` webhook's data)."""
    return await _from_record(record, None, storage, download_seconds)


async def _describe(
    job_id: str, principal: Principal, *, stream: JobStream, storage: Storage, download_seconds: int
) -> JobView:
    if not JOB_ID.fullmatch(job_id):
        raise _not_found(job_id)
    record = await repository.get(job_id)
    if record is not None:
        if record.user_id != principal.user_id and not principal.is_admin:
            raise _not_found(job_id)
        return await _from_record(record, stream, storage, download_seconds)
    meta = await stream.meta(job_id)
    if meta is None or (meta.user_id != principal.user_id and not principal.is_admin):
        raise _not_found(job_id)
    view = JobView(
        job_id=job_id,
        status=JobStatus.QUEUED,
        model=meta.model,
        submitted_at=iso(datetime.fromtimestamp(meta.submitted_at, UTC)),
    )
    reply = await stream.reply_of(job_id)
    if reply is not None and reply.status_code != 200:  # refused before any credit moved
        view.status, view.error = JobStatus.FAILED, decode_error(reply)
    return view


async def _from_record(
    record: GenerationRecord,
    stream: JobStream | None,
    storage: Storage,
    download_seconds: int,
    reply: JobReply | None = None,
) -> JobView:
    progress = record.progress
    view = JobView(
        job_id=record.id,
        status=JobStatus(record.status),
        model=record.model,
        attempts=record.attempts,
        progress=None
        if progress is None
        else JobProgress(message=progress.message, fraction=progress.fraction, queue_position=progress.queue_position),
        submitted_at=iso(record.created_at),
        started_at=iso(record.started_at),
        finished_at=iso(record.finished_at),
    )
    if record.status in (GenerationStatus.FAILED, GenerationStatus.CANCELLED):
        view.error = record_error(record).body()
    elif record.status is GenerationStatus.SUCCEEDED:
        if reply is None and stream is not None:  # the very body the POST answered, while Redis keeps it
            reply = await stream.reply_of(record.id)
        if reply is None or reply.status_code != 200:
            reply = await reply_from_record(record)
        view.result = decode_success(reply)
        assert record.output_key is not None
        view.download_url = await storage.download_url(record.output_key, expires_in=download_seconds)
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=download_seconds)
        view.download_expires_at = iso(expires)
    return view


def generation_out(record: GenerationRecord) -> GenerationOut:
    seconds = record.duration_seconds
    return GenerationOut(
        id=record.id,
        user_id=record.user_id,
        project_id=record.project_id,
        model=record.model,
        prompt=record.prompt,
        source_key=record.source_key,
        requested_duration=record.requested_duration,
        duration=None if seconds is None else format_duration(seconds),
        status=record.status,
        s3_key=record.output_key,
        credits_charged=record.credits_charged,
        credits_refunded=record.credits_refunded,
        error=record.error,
        generation_time=record.generation_ms,
        created_at=iso(record.created_at) or "",
        finished_at=iso(record.finished_at),
    )


async def list_generations(
    filters: GenerationFilter, *, limit: int, cursor: str | None, storage: Storage, download_seconds: int
) -> GenerationPage:
    """A page of generations, newest first, with a short-lived download link on every stored video."""
    records, next_cursor = await repository.list_page(filters, limit=limit, cursor=cursor)
    items = [generation_out(r) for r in records]
    for item in items:
        if item.status is GenerationStatus.SUCCEEDED and item.s3_key:
            item.download_url = await storage.download_url(item.s3_key, expires_in=download_seconds)
    return GenerationPage(items=items, next_cursor=next_cursor)


async def generation_of(generation_id: str) -> GenerationRecord | None:
    """One generation's whole record, for operators (the console shows its provider request id)."""
    return await repository.get(generation_id) if JOB_ID.fullmatch(generation_id) else None
