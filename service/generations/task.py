"""The generation's task: what a worker does with one delivery of a job, up to its reply.

It dispatches on what the database says (``GenerationStatus``), so every delivery of a job, the
first or one after a crash, ends the same way and moves money at most once:

- no record, first delivery: check the source, charge (creating the RUNNING record), generate,
  store, succeed; the database is not read first;
- no record, later delivery: the same, unless past ``JOB_MAX_ATTEMPTS``: the spec's 500, and
  nothing was charged;
- RUNNING: resume. A stored video is recorded (no second generation or upload); a known provider
  request is resumed, never resubmitted; past ``JOB_MAX_ATTEMPTS``, or refunded by an admin
  meanwhile: FAILED, refunded once;
- SUCCEEDED, FAILED or CANCELLED: answer from the record (a cancelled one whose provider request
  is known, left by a worker that died: that request is cancelled with the provider first).

A job cancelled while it runs (``cancel.py``; the record already says CANCELLED) has its model run
stopped (``stops.py``), its provider request cancelled, and is answered from its record; one
cancelled while its video is being stored is answered the same way once the upload is done (the
SUCCEEDED transition finds it cancelled).

Only the model's own errors, the source image's, and a store refusing the upload fail a job;
an outage (``is_transient``) propagates, and the worker runs the delivery again once it is over.
Before each step that costs money or cannot be undone, ``check_lease`` confirms the worker still
holds the job.

This module decides what a delivery does; ``runner.py`` does it (start, resume, produce, end).
"""

from __future__ import annotations

import time

from models_registry.registry import ModelRegistry
from service.core import metrics
from service.core.errors import AppError, Cancelled, GenerationFailed
from service.core.settings import Settings
from service.generations import repository, settlement
from service.generations.outcomes import error_reply, outcome_of, reply_from_record
from service.generations.production import Fault, Production, Publish
from service.generations.records import GenerationRecord
from service.generations.runner import CheckLease, Runner, Started
from service.generations.status import TERMINAL, GenerationStatus
from service.jobs.messages import JobMessage, JobReply
from service.storage.base import Storage


def _no_fault(point: str, job_id: str) -> None:
    return None


async def _held() -> None:
    return None


async def _untold(job: JobMessage, record: GenerationRecord) -> None:
    return None


class GenerationTask:
    """One per worker process: the registry, the storage and the settings every job needs.

    ``on_started`` is told of every charged job a delivery starts or resumes (the worker queues
    its ``generation.started`` webhook there)."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        storage: Storage,
        *,
        fault: Fault = _no_fault,
        on_started: Started = _untold,
        publish: Publish | None = None,
    ) -> None:
        """``publish`` tells the API processes following a job (``JobStream.publish``) that it
        started or progressed; without it nobody is told (they re-read the job now and then)."""
        self.settings, self.registry, self.storage, self.fault = settings, registry, storage, fault
        self.on_started = on_started
        self.production = Production(storage, fault, publish)
        self.runner = Runner(settings, registry, storage, self.production, fault=fault, on_started=on_started)

    def close(self) -> None:
        """Remove the process's model workdirs; the task runs no job after this."""
        self.production.workdirs.close()

    def accepts(self, job: JobMessage) -> bool:
        """Whether this worker has the job's model."""
        return job.model in self.registry

    def cancel(self, job_id: str) -> bool:
        """``job_id`` was cancelled: stop its model run if this process runs it (False otherwise)."""
        return self.production.stops.request(job_id)

    async def run(self, job: JobMessage, delivery: int, check_lease: CheckLease = _held) -> JobReply:
        """The reply of ``job``'s ``delivery``-th delivery, doing whatever is left to do."""
        if delivery == 1:
            metrics.QUEUE_WAIT_SECONDS.labels(job.model).observe(max(time.time() - job.submitted_at, 0.0))
        with self.production.stops.tracking(job.job_id):
            reply = await self._run(job, delivery, check_lease)
        metrics.JOBS_FINISHED.labels(job.model, *outcome_of(reply)).inc()
        return reply

    async def _run(self, job: JobMessage, delivery: int, check_lease: CheckLease) -> JobReply:
        if delivery == 1:  # the happy path: the record cannot exist unless the job was queued twice
            try:
                return await self.runner.start(job, 1, check_lease)
            except settlement.AlreadyExists:
                pass
        record = await repository.get(job.job_id)
        if record is None:
            if delivery > self.settings.job_max_attempts:
                return error_reply(job.job_id, self._given_up(delivery))
            return await self.runner.start(job, delivery, check_lease)
        if record.status in TERMINAL:
            if record.status is GenerationStatus.CANCELLED and job.model in self.registry:
                await self.production.cancel_with_provider(self.registry.get(job.model), record)
            return await reply_from_record(record)
        if delivery > self.settings.job_max_attempts:
            return await self.runner.fail(record, self._given_up(delivery))
        if record.credits_refunded:  # an admin refunded it while it ran: it is not made for free
            return await self.runner.fail(record, GenerationFailed("the generation was refunded before it finished"))
        return await self.runner.resume(job, record, delivery, check_lease)

    async def answered(self, job: JobMessage, reply: JobReply) -> None:
        """A redelivered job already has its reply (only the ack was missing, or the job was
        cancelled while its worker was dead): a cancelled job's provider request, which the dead
        worker may have left running, is cancelled with the provider."""
        if reply.status_code != Cancelled.status_code or job.model not in self.registry:
            return
        record = await repository.get(job.job_id)
        if record is not None and record.status is GenerationStatus.CANCELLED:
            await self.production.cancel_with_provider(self.registry.get(job.model), record)

    async def reject(self, job: JobMessage, exc: AppError) -> JobReply:
        """Fail ``job`` without running it (its model is not installed here); refunded if charged."""
        record = await repository.get(job.job_id)
        if record is None:
            return error_reply(job.job_id, exc)
        if record.status in TERMINAL:
            return await reply_from_record(record)
        return await self.runner.fail(record, exc)

    @staticmethod
    def _given_up(delivery: int) -> GenerationFailed:
        return GenerationFailed(f"the job was interrupted {delivery - 1} times and was not retried again")
