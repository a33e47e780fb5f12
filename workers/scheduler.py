"""The worker's scheduling loop: claim jobs while slots are free (per model: ``workers.slots``),
run each as a task, reply and acknowledge. Every Redis command is a ``JobStream`` method; every step of a job is the
generation's task (``service.generations.task``).

- Delivery is at-least-once, effects exactly-once: a job is acknowledged only with its reply,
  after its record is terminal; a redelivery resumes whatever an earlier one left.
- Leases (``service.jobs.lease``): renewed together every ``JOB_LEASE_SECONDS / 3``; a job found
  taken is cancelled; money and uploads are fenced by ``Leases.check``. Jobs idle past the lease
  (their worker died) are reclaimed every few seconds with ``XAUTOCLAIM``.
- Outages are not attempts (``workers.handling``, which runs each delivery): while the database or
  Redis is unreachable, the job keeps its lease and its run is retried with backoff.
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
import time
from collections.abc import Mapping
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from service.core.redis import BLOCK_MS
from service.generations.task import GenerationTask
from service.jobs.lease import Leases
from service.jobs.messages import Delivery
from service.jobs.stream import JobStream
from workers.handling import JobHandler, Notify
from workers.slots import ModelSlots

log = structlog.get_logger(__name__)

PRUNE_EVERY = 5.0  # seconds between trims of acknowledged entries
STALE_CONSUMER_MS = 3_600_000  # a consumer silent this long, with nothing pending, is removed


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
        self._cancel_reader = cancel_reader
        self.lease_ms = int(lease_seconds * 1000)
        if limits is None:
            limits = dict.fromkeys(task.registry.names(), concurrency)
        self.slots = ModelSlots(limits, default=concurrency, prefetch=prefetch or concurrency)
        self.leases = Leases(stream, name, lease_seconds, on_lost=self._lost)
        self.handler = JobHandler(stream, task, self.leases, notify)
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
        model = entry.job.model if entry.job is not None and self.task.accepts(entry.job) else None
        turn = self.slots.take(model) if model is not None else None  # taken now: the next claim counts it
        task = asyncio.create_task(self.handler.handle(entry, turn), name=f"job-{entry.message_id}")
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
        for task in self._upkeep:
            task.cancel()
        await asyncio.gather(*self._upkeep, return_exceptions=True)
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
