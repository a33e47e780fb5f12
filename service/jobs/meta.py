"""What Redis keeps of a job beside the stream, and what a submission asks and gets."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from service.jobs.idempotency import IdempotencyRecord
from service.jobs.messages import JobMessage


class JobMeta(msgspec.Struct):
    """What Redis knows of a job before (or without) a database record: its owner and when it was
    submitted (the job view), and what a cancel needs: the request (a job cancelled before it was
    charged gets a record of it), the inbox of the process waiting on it and its Idempotency-Key."""

    user_id: str
    submitted_at: float
    model: str
    prompt: str = ""
    source_key: str = ""
    duration: str = ""
    project_id: str | None = None
    inbox: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def of(cls, job: JobMessage) -> JobMeta:
        return cls(
            job.user_id,
            job.submitted_at,
            job.model,
            prompt=job.prompt,
            source_key=job.source_key,
            duration=job.duration,
            project_id=job.project_id,
            inbox=job.inbox,
            idempotency_key=job.idempotency_key,
        )


@dataclass(frozen=True)
class IdempotentRequest:
    """The caller's key (already checked) and the hash of the body it came with."""

    key: str
    body_hash: str


@dataclass(frozen=True)
class Submitted:
    """The job that answers a request: the one just queued, or the one its key is bound to."""

    job_id: str
    earlier: IdempotencyRecord | None = None
