"""A job's status for ``GET /video-gen/jobs/{id}``: the database record once it is charged, the
Redis owner record and reply before that (or when it was refused before any credit moved).

Owner or admin only; anyone else gets the same 404 as for a job that does not exist, so ids
reveal nothing.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from redis.exceptions import RedisError

from service.core.auth import Principal
from service.core.errors import DATABASE_UNREACHABLE, QUEUE_UNREACHABLE, NotFound, ServiceUnavailable
from service.generations import repository as generations
from service.generations.schemas import ImageToVideoResponse
from service.jobs.messages import JobReply
from service.jobs.outcomes import TERMINAL, reply_from_record
from service.jobs.schemas import JobError, JobProgress, JobView
from service.jobs.service import JobQueue
from service.storage.base import Storage

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"Job {job_id} not found")


def _progress(raw: Any) -> JobProgress | None:
    if isinstance(raw, str):
        try:
            raw = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None
    if not isinstance(raw, dict) or not raw:
        return None
    return JobProgress(message=raw.get("message"), fraction=raw.get("fraction"),
                       queue_position=raw.get("queuePosition"))


def _error(reply: JobReply) -> JobError:
    body = reply.body
    return JobError(status_code=int(body.get("statusCode", reply.status_code)),
                    message=body.get("message", "Image-to-video generation failed"), error=str(body.get("error", "")))


async def describe_job(job_id: str, principal: Principal, *, queue: JobQueue, storage: Storage,
                       download_seconds: int) -> JobView:
    if not _JOB_ID.fullmatch(job_id):
        raise _not_found(job_id)
    try:
        record = await generations.get(job_id)
    except Exception as exc:
        raise ServiceUnavailable(DATABASE_UNREACHABLE) from exc
    if record is not None:
        if record["user_id"] != principal.user_id and not principal.is_admin:
            raise _not_found(job_id)
        return await _from_record(record, queue, storage, download_seconds)
    try:
        meta = await queue.meta(job_id)
        reply = await queue.reply(job_id) if meta is not None else None
    except RedisError as exc:
        raise ServiceUnavailable(QUEUE_UNREACHABLE) from exc
    if meta is None or (meta.user_id != principal.user_id and not principal.is_admin):
        raise _not_found(job_id)
    view = JobView(job_id=job_id, status="queued", model=meta.model, submitted_at=_iso(meta.submitted_at))
    if reply is not None:  # refused by the worker before any credit moved (e.g. insufficient credits)
        view.status, view.stage, view.error = "failed", "failed", _error(reply)
    return view


async def _from_record(record: dict[str, Any], queue: JobQueue, storage: Storage, download_seconds: int) -> JobView:
    status = record["status"] if record["status"] in TERMINAL else "running"
    view = JobView(
        job_id=record["id"], status=status, stage=record["status"], model=record["model"],
        attempts=record.get("attempts"), progress=_progress(record.get("progress")),
        submitted_at=_iso(record["created_at"]), started_at=_iso(record.get("started_at")),
        finished_at=_iso(record.get("finished_at")),
    )
    if status not in TERMINAL:
        return view
    try:  # the very body the POST answered, while Redis keeps it; rebuilt from the record after
        reply = await queue.reply(record["id"])
    except RedisError:
        reply = None
    if reply is None or (reply.status_code == 200) != (status == "succeeded"):
        reply = await reply_from_record(record)
    if status == "failed":
        view.error = _error(reply)
        return view
    view.result = msgspec.convert(reply.body, ImageToVideoResponse)
    expires = datetime.now(timezone.utc) + timedelta(seconds=download_seconds)
    view.download_url = await storage.download_url(record["output_key"], expires_in=download_seconds)
    view.download_expires_at = _iso(expires.replace(microsecond=0))
    return view
