"""What the admin queue endpoints answer: the queue's state per model and worker, dead letters,
and the outcome of a requeue or discard (``queue.py`` builds them)."""

from __future__ import annotations

import msgspec


class QueuedOut(msgspec.Struct, rename="camel", kw_only=True):
    message_id: str
    job_id: str | None
    user_id: str | None
    model: str | None
    submitted_at: str | None
    worker: str | None = None
    idle_ms: int | None = None
    deliveries: int | None = None


class ModelLoad(msgspec.Struct, rename="camel", kw_only=True):
    """One model's jobs stream (``model`` is ``LEGACY`` for the shared stream of older versions)."""

    model: str
    waiting: int
    running: int
    workers: int
    """Workers that read this model's stream: 0 with jobs waiting means no worker has the model."""


class WorkerOut(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    jobs: int
    idle_ms: int


class QueueOut(msgspec.Struct, rename="camel", kw_only=True):
    """The queue now. ``byModel`` counts every job of each model's stream; the job lists hold the
    first ``limit`` of each kind, oldest first."""

    waiting: int
    running: int
    dead_letters: int
    by_model: list[ModelLoad]
    workers: list[WorkerOut]
    waiting_jobs: list[QueuedOut]
    running_jobs: list[QueuedOut]


class DeadLetterOut(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    reason: str
    dead_at: str | None
    message_id: str | None
    job_id: str | None
    user_id: str | None
    model: str | None
    prompt: str | None
    requeueable: bool
    """The letter holds a readable job (an unparseable entry can only be discarded)."""
    data: str


class DeadLetterPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[DeadLetterOut]
    next_cursor: str | None


class QueueActionOut(msgspec.Struct, rename="camel", kw_only=True):
    dead_letter_id: str
    job_id: str | None
    action_id: int
    message_id: str | None = None
    """The requeued job's new entry on its model's jobs stream."""
