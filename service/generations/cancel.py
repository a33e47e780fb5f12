"""Cancelling a job: ``POST /video-gen/jobs/{id}/cancel``, by its owner or an admin.

The cancel is decided by the database, like every end of a generation (``status.py``):

- not charged yet (only Redis knows the job): a CANCELLED record with nothing charged is
  inserted; the worker's charge then conflicts with it and the job never runs. If a worker
  charged it first, the insert does nothing and the job is cancelled as running;
- RUNNING: RUNNING -> CANCELLED with its refund, in one transaction (``settlement.cancel``). A
  success or a failure racing it changes the record only from RUNNING too: one of them wins, and
  the loser sees the winner's status (a cancel that loses answers 409);
- SUCCEEDED or FAILED: 409 ``Job <id> already succeeded`` (or ``failed``); CANCELLED: the job
  again (a retried cancel is not an error).

Once the record says CANCELLED, ``JobStream.announce_cancel`` writes the job's reply (the 409
``Image-to-video generation cancelled``: a request waiting on the job gets it at once, and so do
retries with its Idempotency-Key) and tells the workers, so that the one running the job stops its
model (and cancels the provider's request). A worker that dies meanwhile changes nothing: the job's
next delivery finds the record cancelled and answers from it.

Like an admin refund, a cancel is a ledger operation made by the API itself: the refund is the
cancel's, and the worker may be gone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.core.auth import Principal
from service.core.errors import CANCELLED, Cancelled, Conflict, NotFound
from service.generations import repository, settlement, transitions
from service.generations.outcomes import decode_error, error_reply
from service.generations.records import GenerationRecord, NewGeneration
from service.generations.status import GenerationStatus
from service.generations.views import JOB_ID
from service.jobs.stream import JobMeta, JobStream


def _not_found(job_id: str) -> NotFound:
    return NotFound(f"Job {job_id} not found")


def _already(job_id: str, status: str) -> Conflict:
    return Conflict(f"Job {job_id} already {status}")


async def cancel_job(job_id: str, principal: Principal, *, stream: JobStream) -> GenerationRecord:
    """Cancel the job (see the module's docstring); its record as it ends, CANCELLED."""
    if not JOB_ID.fullmatch(job_id):
        raise _not_found(job_id)
    record = await repository.get(job_id)
    meta = await stream.meta(job_id)
    if record is None:
        if meta is None or (meta.user_id != principal.user_id and not principal.is_admin):
            raise _not_found(job_id)
        record = await _cancel_queued(job_id, meta, stream)
        if record.status is GenerationStatus.CANCELLED:
            return record  # announced by ``_cancel_queued``
    elif record.user_id != principal.user_id and not principal.is_admin:
        raise _not_found(job_id)
    if record.status is GenerationStatus.RUNNING:
        actor = principal.user_id
        if principal.is_admin and actor != record.user_id:
            actor = f"admin {actor}"
        record = await settlement.cancel(record, actor=actor)
    if record.status is not GenerationStatus.CANCELLED:
        raise _already(job_id, record.status)
    await stream.announce_cancel(job_id, error_reply(job_id, Cancelled()), meta)
    return record


async def _cancel_queued(job_id: str, meta: JobMeta, stream: JobStream) -> GenerationRecord:
    """The record of a job no worker has charged: CANCELLED with nothing charged, or (a worker
    got there first) the record that worker wrote."""
    if await stream.reply_of(job_id) is not None:  # refused by a worker before any credit moved
        raise _already(job_id, GenerationStatus.FAILED)
    new = NewGeneration(
        id=job_id,
        user_id=meta.user_id,
        model=meta.model,
        prompt=meta.prompt,
        source_key=meta.source_key,
        requested_duration=meta.duration,
        project_id=meta.project_id,
        idempotency_key=meta.idempotency_key,
    )
    if await settlement.cancel_queued(new, submitted_at=datetime.fromtimestamp(meta.submitted_at, UTC)):
        earlier = await stream.announce_cancel(job_id, error_reply(job_id, Cancelled()), meta)
        if earlier is not None and decode_error(earlier).message != CANCELLED:
            # A worker refused the job (no record: nothing charged) between the two reads above.
            await transitions.discard_cancelled(job_id)
            raise _already(job_id, GenerationStatus.FAILED)
    record = await repository.get(job_id)
    assert record is not None
    return record
