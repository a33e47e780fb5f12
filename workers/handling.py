"""One delivery, from the worker's point of view: bound to the job's log context and trace span,
waiting for its model's slot, then dead-lettered (not a job, or a model this worker lacks) or run
by the generation's task, replied and acknowledged; retried through outages.

Outages are not attempts: while the database or Redis is unreachable, the job keeps its lease and
its run is retried with backoff; any other error leaves it for redelivery, which counts.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Awaitable, Callable

import structlog

from service.core.errors import GenerationFailed, ValidationFailed
from service.core.tracing import job_span
from service.core.transient import is_transient
from service.generations.outcomes import error_reply
from service.generations.task import GenerationTask
from service.jobs.lease import LeaseLost, Leases
from service.jobs.messages import Delivery, JobMessage, JobReply
from service.jobs.stream import JobStream
from workers.faults import crash_point

log = structlog.get_logger(__name__)
Notify = Callable[[JobMessage, JobReply], Awaitable[None]]

MAX_OUTAGE_SECONDS = 600.0  # a job retried through an outage this long is left for redelivery instead


class JobHandler:
    """Runs deliveries for one worker: its stream, generation task, leases and webhook notifier."""

    def __init__(self, stream: JobStream, task: GenerationTask, leases: Leases, notify: Notify | None) -> None:
        self.stream, self.task, self.leases = stream, task, leases
        self.notify = notify or _nobody

    async def handle(self, entry: Delivery, turn: asyncio.Future[None] | None = None) -> None:
        # This task's own context: every line of this job, the scheduler's and the task's, says which.
        if entry.job is None:
            await self._handle_traced(entry, turn)
            return
        job = entry.job
        structlog.contextvars.bind_contextvars(
            job_id=job.job_id, user_id=job.user_id, model=job.model, request_id=job.request_id
        )
        with job_span(job.trace_context, job.submitted_at, job_id=job.job_id, model=job.model, delivery=entry.count):
            await self._handle_traced(entry, turn)

    async def _handle_traced(self, entry: Delivery, turn: asyncio.Future[None] | None) -> None:
        try:
            if turn is not None:  # its model's slots are full: wait for one (the lease is renewed meanwhile)
                await turn
            if entry.job is None:
                reply = _salvage_reply(entry)
                await self._retrying(lambda: self.stream.dead_letter(entry, entry.error or "unparseable", reply))
            elif not self.task.accepts(entry.job):
                names = ", ".join(self.task.registry.names())
                error = ValidationFailed([f"model must be one of the following values: {names}"])
                await self._retrying(lambda: self._reject(entry, error))
            else:
                await self._retrying(lambda: self._attempt(entry))
        except LeaseLost as exc:
            log.warning("job.lease_lost", message_id=entry.message_id, stream=entry.stream, error=str(exc))

    async def _reject(self, entry: Delivery, error: ValidationFailed) -> None:
        assert entry.job is not None
        reply = await self.task.reject(entry.job, error)
        await self.notify(entry.job, reply)
        await self.stream.dead_letter(entry, f"unknown model {entry.job.model!r}", reply)

    async def _attempt(self, entry: Delivery) -> None:
        job = entry.job
        assert job is not None
        if entry.count > 1 and (earlier := await self.stream.reply_of(job.job_id)) is not None:
            await self.task.answered(job, earlier)  # cancelled while its worker was dead: stop the provider
            await self.notify(job, earlier)  # queued already, unless the reply came from elsewhere: once
            await self.stream.complete(entry.ref, job, earlier)  # only the ack was missing
            return
        reply = await self.task.run(job, entry.count, lambda: self.leases.check(entry.ref))
        self.leases.release(entry.ref)  # answered: past the point where a takeover matters
        crash_point("before_webhook", job.job_id)
        # The webhook is queued before the job is acknowledged: a crash in between redelivers the
        # job, which queues the same event again (kept once).
        await self.notify(job, reply)
        crash_point("before_ack", job.job_id)
        await self.stream.complete(entry.ref, job, reply)
        log.info("job.done", job_id=job.job_id, model=job.model, status=reply.status_code, delivery=entry.count)

    async def _retrying(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` until it completes, retrying through outages (the job keeps its lease).

        Any other error, or an outage longer than ``MAX_OUTAGE_SECONDS``, leaves the job pending:
        it is redelivered after the lease, which counts as an attempt.
        """
        backoff, since = 0.2, time.monotonic()
        # A database driver that dies mid-transaction can leave its context (Piccolo's current
        # transaction) behind: the first try runs in this task (no task a job on the happy path),
        # each retry in a task of its own with a copy of the context from before the first.
        clean, tries = contextvars.copy_context(), 0
        while True:
            try:
                tries += 1
                if tries == 1:
                    await step()
                else:
                    await asyncio.create_task(step(), context=clean.copy())
                return
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() - since > MAX_OUTAGE_SECONDS:
                    log.exception("job.error_left_for_redelivery", error=str(exc) or type(exc).__name__)
                    return
                log.warning("job.outage_retry", error=str(exc) or type(exc).__name__, retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


async def _nobody(job: JobMessage, reply: JobReply) -> None:
    return None


def _salvage_reply(entry: Delivery) -> JobReply | None:
    """For an entry that is not a valid job but names one: the spec's 500 for its client."""
    try:
        job_id = str(json.loads(entry.data)["job_id"])
    except (ValueError, KeyError, TypeError):
        return None
    return error_reply(job_id, GenerationFailed("the job message could not be read"))
