"""Admin operations on the queue: what waits and runs (per model, per worker), the dead letters
with their reasons, and requeueing or discarding one. Requeue and discard are admin actions in
the audit trail, recorded in the transaction that the Redis change happens in: when the record
cannot be written, the queue is left alone.

Requeue runs the job again under its own id, as if just submitted: nobody waits for it (the
request that queued it was answered with the dead letter's error), its owner follows it at
``GET /video-gen/jobs/{id}``, and the ledger's rules hold as for any job (a generation already
charged is never charged again; a new one is charged once).
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.admin import repository as actions
from service.admin.queue_schemas import (
    DeadLetterOut,
    DeadLetterPage,
    ModelLoad,
    QueueActionOut,
    QueuedOut,
    QueueOut,
    WorkerOut,
)
from service.core.db import write_transaction
from service.core.errors import Conflict, NotFound, ValidationFailed
from service.core.pagination import check_limit, iso
from service.jobs.inspection import STREAM_ID, DeadLetterEntry, QueuedJob
from service.jobs.stream import JobStream

LEGACY = "(shared stream, before per-model streams)"


def _time(unix: float | None) -> str | None:
    return iso(datetime.fromtimestamp(unix, UTC)) if unix else None


def _queued(q: QueuedJob) -> QueuedOut:
    job = q.job
    return QueuedOut(
        message_id=q.message_id,
        job_id=job.job_id if job else None,
        user_id=job.user_id if job else None,
        model=job.model if job else None,
        submitted_at=_time(job.submitted_at) if job else None,
        worker=q.consumer,
        idle_ms=q.idle_ms,
        deliveries=q.deliveries,
    )


def _dead(entry: DeadLetterEntry) -> DeadLetterOut:
    letter, job = entry.letter, entry.job
    return DeadLetterOut(
        id=entry.id,
        reason=letter.reason if letter else "unreadable dead letter",
        dead_at=_time(letter.dead_at) if letter else None,
        message_id=letter.message_id if letter else None,
        job_id=job.job_id if job else (letter.job_id if letter else None),
        user_id=job.user_id if job else None,
        model=job.model if job else None,
        prompt=job.prompt if job else None,
        requeueable=job is not None,
        data=letter.data if letter else "",
    )


async def queue(stream: JobStream, *, limit: int = 100) -> QueueOut:
    state = await stream.queue_state(check_limit(limit))
    by_model = [
        ModelLoad(model=s.model or LEGACY, waiting=s.waiting, running=s.running, workers=s.workers)
        for s in state.streams
    ]
    return QueueOut(
        waiting=state.waiting,
        running=state.running,
        dead_letters=state.dead_letters,
        by_model=by_model,
        workers=[WorkerOut(name=w.name, jobs=w.pending, idle_ms=w.idle_ms) for w in state.workers],
        waiting_jobs=[_queued(q) for q in state.waiting_jobs],
        running_jobs=[_queued(q) for q in state.running_jobs],
    )


def _cursor(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not STREAM_ID.fullmatch(value):
        raise ValidationFailed(["cursor is not valid"])
    return value


async def dead_letters(stream: JobStream, *, limit: int, cursor: str | None) -> DeadLetterPage:
    """Dead letters, newest first; ``cursor`` is the previous page's ``nextCursor``."""
    entries, next_cursor = await stream.dead_letters(limit=check_limit(limit), before=_cursor(cursor))
    return DeadLetterPage(items=[_dead(e) for e in entries], next_cursor=next_cursor)


async def _entry(stream: JobStream, dead_id: str) -> DeadLetterEntry:
    entry = await stream.dead_letter_of(dead_id) if STREAM_ID.fullmatch(dead_id) else None
    if entry is None:
        raise NotFound(f"Dead letter {dead_id} not found")
    return entry


async def dead_letter(stream: JobStream, dead_id: str) -> DeadLetterOut:
    return _dead(await _entry(stream, dead_id))


def _short(value: str | None, limit: int) -> str | None:
    # What an unparseable letter names goes into the audit only when it fits its column.
    return value if value is not None and len(value) <= limit else None


async def requeue(admin_id: str, dead_id: str, reason: str, *, stream: JobStream) -> QueueActionOut:
    """Put a dead letter's job back on its model's jobs stream, once; 404 when the letter is gone, 409
    when it holds no readable job."""
    entry = await _entry(stream, dead_id)
    job = entry.job
    if job is None:
        raise Conflict(f"Dead letter {dead_id} holds no readable job: it can only be discarded")
    async with write_transaction():
        details = {"deadLetterId": dead_id, "model": job.model, "deadReason": _dead(entry).reason}
        action_id = await actions.record(
            admin_id,
            "requeue",
            reason=reason,
            target_user_id=_short(job.user_id, 255),
            generation_id=_short(job.job_id, 64),
            details=details,
        )
        message_id = await stream.requeue_dead_letter(dead_id, job)
        if message_id is None:  # another operator got there first: this action never happened
            raise NotFound(f"Dead letter {dead_id} not found")
    return QueueActionOut(dead_letter_id=dead_id, job_id=job.job_id, action_id=action_id, message_id=message_id)


async def discard(admin_id: str, dead_id: str, reason: str, *, stream: JobStream) -> QueueActionOut:
    """Delete a dead letter for good; 404 when it is already gone."""
    out = _dead(await _entry(stream, dead_id))
    async with write_transaction():
        details = {"deadLetterId": dead_id, "deadReason": out.reason, "model": out.model}
        action_id = await actions.record(
            admin_id,
            "discard",
            reason=reason,
            target_user_id=_short(out.user_id, 255),
            generation_id=_short(out.job_id, 64),
            details=details,
        )
        if not await stream.discard_dead_letter(dead_id):
            raise NotFound(f"Dead letter {dead_id} not found")
    return QueueActionOut(dead_letter_id=dead_id, job_id=out.job_id, action_id=action_id)
