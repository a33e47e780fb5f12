"""The worker's scheduling loop: claim jobs while slots are free (per model: ``workers.slots``),
run each as a task, reply and acknowledge. Every Redis command is a ``JobStream`` method; every step of a job is the
generation's task (``service.generations.task``).

- Delivery is at-least-once, effects exactly-once: a job is acknowledged only with its reply,
  after its record is terminal; a redelivery resumes whatever an earlier one left.
- Leases (``service.jobs.lease``): renewed together every ``JOB_LEASE_SECONDS / 3``; a job found
  taken is cancelled; money and uploads are fenced by ``Leases.check``. Jobs idle past the lease
  (their worker died) are reclaimed every few seconds with ``XAUTOCLAIM``.
- Outages are not attempts: while the database or Redis is unreachable, the job keeps its lease
  and its run is retried with backoff; any other error leaves it for redelivery, which counts.
- Poison: an unparseable entry, or a job naming a model this worker does not have, is
  dead-lettered with its reason and a reply, so it never blocks the group.
- Cancels: with a ``cancel_reader`` (a connection of its own: it blocks), the cancels stream is
  followed and a cancelled job this process runs has its model run stopped (``GenerationTask.cancel``).
- Shutdown: stop claiming, give running jobs ``SHUTDOWN_GRACE_SECONDS``, then cancel the rest and
  hand them over (reclaimable at once, no delivery counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from service.core.errors import GenerationFailed, ValidationFailed
from service.core.redis import BLOCK_MS
from service.core.tasks import cancel_until_done
from service.core.tracing import job_span
from service.core.transient import is_transient
from service.generations.outcomes import error_reply
from service.generations.task import GenerationTask
from service.jobs.lease import LeaseLost, Leases
from service.jobs.messages import Delivery, JobMessage, JobReply
from service.jobs.stream import JobStream
from workers.faults import crash_point
from workers.slots import ModelSlots

log = structlog.get_logger(__name__)
Notify = Callable[[JobMessage, JobReply], Awaitable[None]]

PRUNE_EVERY = 5.0  # seconds between trims of acknowledged entries
STALE_CONSUMER_MS = 3_600_000  # a consumer silent this long, with nothing pending, is removed
MAX_OUTAGE_SECONDS = 600.0  # a job retried through an outage this long is left for redelivery instead
UPKEEP_STOP_SECONDS = 5.0  # the most ``shutdown`` waits for its background loops to end


class Scheduler:
    def __init__(
        self,
        stream: JobStream,
        task: GenerationTask,
        reader: Redis,
        *,
        name: str,
        concurrency: int,
        lease_seconds: float,
        notify: Notify | None = None,
        limits: Mapping[str, int] | None = None,
        prefetch: int | None = None,
        cancel_reader: Redis | None = None,
    ) -> None:
        """``limits``: slots per model (``workers.slots.model_limits``); a model without one gets
        ``concurrency``. ``prefetch``: jobs claimed at a time (default: ``concurrency``)."""
        self.stream, self.task, self._reader, self.name = stream, task, reader, name
        self.notify = notify or _nobody
        self._cancel_reader = cancel_reader
        self.lease_ms = int(lease_seconds * 1000)
        if limits is None:
            limits = dict.fromkeys(task.registry.names(), concurrency)
        self.slots = ModelSlots(limits, default=concurrency, prefetch=prefetch or concurrency)
        self.leases = Leases(stream, name, lease_seconds, on_lost=self._lost)
        self.reclaim_every = min(self.leases.every, 5.0)
        self.active: dict[str, asyncio.Task[None]] = {}
        self._waiting: set[str] = set()  # claimed jobs waiting for a slot of their model
        self._stopping = asyncio.Event()
        self._reclaim_at = 0.0  # owners get time to renew after an outage before anyone reclaims
        self._cursor = "0-0"
        self._upkeep: list[asyncio.Task[None]] = []

    def stop(self) -> None:
        """Stop claiming new jobs; running ones go on (see ``shutdown``)."""
        self._stopping.set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop``; running jobs may go on until ``shutdown``."""
        if not self._upkeep:
            self._upkeep = [
                asyncio.create_task(self.leases.run(), name="lease-renewal"),
                asyncio.create_task(self._prune(), name="stream-prune"),
            ]
            if self._cancel_reader is not None:
                self._upkeep.append(asyncio.create_task(self._follow_cancels(), name="cancels"))
        while not self._stopping.is_set():
            try:
                await self.stream.ensure_group()
                break
            except (RedisError, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
                await self._pause(1.0)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = self.slots.claimable()
                if free <= 0 and self._waiting and self.slots.any_free():
                    await self._hand_back()  # full models' jobs fill the prefetch: others may run them
                    continue
                if free <= 0:
                    await asyncio.wait(list(self.active.values()), return_when=asyncio.FIRST_COMPLETED, timeout=0.5)
                    continue
                for entry, since in await self._next(free, stop):
                    self._start(entry, since)
        finally:
            stop.cancel()

    async def _next(self, free: int, stop: asyncio.Future[Any]) -> list[tuple[Delivery, float]]:
        """Jobs of dead workers first (every few seconds), then new ones; [] when stopping."""
        since = time.monotonic()
        claim = asyncio.ensure_future(self._claim(free, since))
        try:
            await asyncio.wait([claim, stop], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            claim.cancel()
            claim.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen: no warning later
            raise
        if not claim.done():  # stopping: anything it claims is handed over by ``shutdown``
            claim.cancel()
            with contextlib.suppress(BaseException):
                await claim
            return []
        try:
            found = claim.result()
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost its data (no persistence): recreate the group
                log.warning("worker.group_missing")
                with contextlib.suppress(RedisError, OSError):
                    await self.stream.ensure_group()
            else:
                log.warning("worker.claim_failed", error=str(exc))
                await self._pause(1.0)
            return []
        except (RedisError, OSError) as exc:
            log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
            self._reclaim_at = time.monotonic() + 2 * self.leases.every + 1.0
            await self._pause(1.0)
            return []
        return [] if self._stopping.is_set() else [(entry, since) for entry in found]

    async def _claim(self, free: int, since: float) -> list[Delivery]:
        if since >= self._reclaim_at:
            self._reclaim_at = since + self.reclaim_every
            self._cursor, stale = await self.stream.reclaim(self.name, free, self.lease_ms, self._cursor)
            if len(stale) == free:  # a dead worker left more: take the next batch at once, not next period
                self._reclaim_at = since
            if stale:
                return stale
        return await self.stream.claim(self._reader, self.name, free, BLOCK_MS)

    def _start(self, entry: Delivery, since: float) -> None:
        self.leases.hold(entry.message_id, since)
        if entry.message_id in self.active:  # ours, still running: reclaimed by this very worker after
            return  # a stall longer than the lease (XAUTOCLAIM takes any idle entry); it runs on, renewed
        model = entry.job.model if entry.job is not None and self.task.accepts(entry.job) else None
        turn = self.slots.take(model) if model is not None else None  # taken now: the next claim counts it
        task = asyncio.create_task(self._handle(entry, turn), name=f"job-{entry.message_id}")
        self.active[entry.message_id] = task
        if turn is not None:
            self._waiting.add(entry.message_id)
            turn.add_done_callback(lambda _: self._waiting.discard(entry.message_id))

        def done(_: asyncio.Task[None]) -> None:
            self.active.pop(entry.message_id, None)
            self._waiting.discard(entry.message_id)
            self.leases.release(entry.message_id)
            if model is not None:
                self.slots.give_back(model, turn)

        task.add_done_callback(done)

    async def _hand_back(self) -> None:
        """Give the jobs waiting for a full model's slot back to the group (reclaimable at once by
        any worker, no delivery counted), so that this worker claims jobs of its idle models again.
        This worker takes them back itself once a reclaim period has passed, if nobody else did."""
        ids = list(self._waiting)
        tasks = [self.active[i] for i in ids if i in self.active]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        self._reclaim_at = time.monotonic() + self.reclaim_every
        try:
            handed = await self.stream.hand_back(self.name, self.lease_ms, ids)
        except (RedisError, OSError) as exc:  # then they are reclaimed after the lease instead
            log.warning("worker.hand_back_failed", error=str(exc) or type(exc).__name__)
            return
        log.info("worker.handed_back", jobs=handed, reason="their model's slots are full")

    def _lost(self, message_id: str) -> None:
        task = self.active.get(message_id)
        if task is not None:
            task.cancel()

    async def _handle(self, entry: Delivery, turn: asyncio.Future[None] | None = None) -> None:
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
            log.warning("job.lease_lost", message_id=entry.message_id, error=str(exc))

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
            await self.stream.complete(entry.message_id, job, earlier)  # only the ack was missing
            return
        reply = await self.task.run(job, entry.count, lambda: self.leases.check(entry.message_id))
        self.leases.release(entry.message_id)  # answered: past the point where a takeover matters
        crash_point("before_webhook", job.job_id)
        # The webhook is queued before the job is acknowledged: a crash in between redelivers the
        # job, which queues the same event again (kept once).
        await self.notify(job, reply)
        crash_point("before_ack", job.job_id)
        await self.stream.complete(entry.message_id, job, reply)
        log.info("job.done", job_id=job.job_id, model=job.model, status=reply.status_code, delivery=entry.count)

    async def _retrying(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` until it completes, retrying through outages (the job keeps its lease).

        Any other error, or an outage longer than ``MAX_OUTAGE_SECONDS``, leaves the job pending:
        it is redelivered after the lease, which counts as an attempt.
        """
        backoff, since = 0.2, time.monotonic()
        while True:
            try:
                # A task per try: a database driver that dies mid-transaction can leave its context
                # (Piccolo's current transaction) behind; the next try starts clean.
                await asyncio.create_task(step())
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

    async def shutdown(self, grace: float) -> int:
        """Stop claiming, give running jobs ``grace`` seconds, hand the rest over; returns how many."""
        self.stop()
        if self.active:
            await asyncio.wait(list(self.active.values()), timeout=grace)
        left = [t for t in self.active.values() if not t.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=10)
        handed = 0
        try:  # the cancelled jobs, and any claimed but never started
            handed = await self.stream.hand_over(self.name, self.lease_ms)
        except (RedisError, OSError) as exc:  # then they are reclaimed after the lease instead
            log.warning("worker.hand_over_failed", error=str(exc) or type(exc).__name__)
        # Loops (lease renewal, prune, cancels): one swallowed cancel() would keep one going for ever.
        await cancel_until_done(self._upkeep, UPKEEP_STOP_SECONDS, owner="scheduler")
        self._upkeep = []
        log.info("worker.drained", left=len(left), handed_over=handed)
        return len(left)

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            try:
                await self.stream.prune(STALE_CONSUMER_MS)
            except (RedisError, OSError) as exc:
                log.debug("worker.prune_failed", error=str(exc) or type(exc).__name__)

    async def _follow_cancels(self) -> None:
        """Stop the model run of every cancelled job this process runs, as the notices come."""
        assert self._cancel_reader is not None
        after: str | None = None
        while True:
            try:
                if after is None:
                    after = await self.stream.cancels_tail()
                after, job_ids = await self.stream.read_cancels(self._cancel_reader, after, BLOCK_MS)
            except (RedisError, OSError) as exc:
                log.warning("worker.cancels_unavailable", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for job_id in job_ids:
                if self.task.cancel(job_id):
                    log.info("job.cancel_requested", job_id=job_id)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


async def _nobody(job: JobMessage, reply: JobReply) -> None:
    return None


def _salvage_reply(entry: Delivery) -> JobReply | None:
    """For an entry that is not a valid job but names one: the spec's 500 for its client."""
    try:
        job_id = str(json.loads(entry.data)["job_id"])
    except (ValueError, KeyError, TypeError):
        return None
    return error_reply(job_id, GenerationFailed("the job message could not be read"))
