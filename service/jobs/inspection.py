"""What operators see of the queue: typed snapshots ``JobStream`` returns for the console and the
admin API (waiting and running jobs, the workers, and dead letters).

Reading them costs a handful of Redis commands bounded by the caller's limit; none of it is on a
job's path.
"""

from __future__ import annotations

import re

import msgspec

from service.jobs.messages import DeadLetter, JobMessage, decode_dead_letter, decode_job

STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


class QueuedJob(msgspec.Struct, kw_only=True):
    """An entry of a jobs stream, waiting or held by a worker."""

    message_id: str
    job: JobMessage | None
    """None when the entry does not decode (a worker will dead-letter it)."""
    consumer: str | None = None
    """The worker holding it; None while it waits."""
    idle_ms: int | None = None
    """Since its worker last renewed its lease."""
    deliveries: int | None = None


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A consumer of the workers' group (on every jobs stream it reads)."""

    name: str
    pending: int
    """Jobs it holds (on all the streams)."""
    idle_ms: int


class StreamLoad(msgspec.Struct, kw_only=True):
    """One jobs stream: a model's (``model``), or the legacy shared one (``model`` None)."""

    model: str | None
    stream: str
    waiting: int
    running: int
    workers: int
    """Consumers of the workers' group on it: 0 means no worker has read it (no worker of the
    model has started since the stream was made): its jobs wait for one."""


class QueueState(msgspec.Struct, kw_only=True):
    """The jobs streams now: counts, and the first ``limit`` waiting and running entries."""

    waiting: int
    """Entries not yet delivered to any worker."""
    running: int
    """Entries delivered and not acknowledged (a worker holds them, or will reclaim them)."""
    waiting_jobs: list[QueuedJob]
    running_jobs: list[QueuedJob]
    workers: list[WorkerInfo]
    dead_letters: int
    """Entries of the dead-letter stream."""
    streams: list[StreamLoad] = []
    """Each jobs stream's counts (every model's, and the legacy one while it has entries)."""


class QueueCounts(msgspec.Struct, kw_only=True):
    """The queue in four numbers, for ``/metrics`` (cheap enough to read at every scrape)."""

    waiting: int
    running: int
    dead_letters: int
    oldest_waiting_seconds: float
    """Age of the oldest entry no worker has claimed; 0 when none waits."""


class DeadLetterEntry(msgspec.Struct, kw_only=True):
    """One dead letter: its id on the dead-letter stream, the letter, and the job it holds."""

    id: str
    letter: DeadLetter | None
    """None when the entry itself does not decode."""
    job: JobMessage | None
    """The letter's data read as a job; None when it is not one (it cannot be requeued)."""


def queued(message_id: str, data: bytes | None, **held: int | str | None) -> QueuedJob:
    try:
        job = decode_job(data) if data else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        job = None
    return QueuedJob(message_id=message_id, job=job, **held)  # type: ignore[arg-type]


def dead_letter_entry(entry_id: str, data: bytes | None) -> DeadLetterEntry:
    try:
        letter = decode_dead_letter(data) if data else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        letter = None
    job = None
    if letter is not None:
        try:
            job = decode_job(letter.data.encode())
        except (msgspec.DecodeError, msgspec.ValidationError):
            job = None
    return DeadLetterEntry(id=entry_id, letter=letter, job=job)
