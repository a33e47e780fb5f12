"""The worker's scheduling loop: claim jobs of the models with a free slot, from their jobs
streams and at most their free slots (``workers.slots``), run each as a task, reply and
acknowledge. Every Redis command is a ``JobStream`` method; every step of a job is the
generation's task (``service.generations.task``).

- Delivery is at-least-once, effects exactly-once: a job is acknowledged only with its reply,
  after its record is terminal; a redelivery resumes whatever an earlier one left.
- Leases (``service.jobs.lease``): renewed together every ``JOB_LEASE_SECONDS / 3``; a job found
  taken is cancelled; money and uploads are fenced by ``Leases.check``.
- Claims (``workers.claiming``): jobs idle past the lease (their worker died) every few seconds,
  else new ones, per stream of a model with a free slot; a claim blocked on other models' streams
  is ended when a slot frees; the legacy shared stream's jobs are moved to their streams.
- Outages are not attempts (``workers.handling``, which runs each delivery): while the database or
  Redis is unreachable, the job keeps its lease and its run is retried with backoff.
- Poison: an unparseable entry, or a job naming a model this worker does not have, is
  dead-lettered with its reason and a reply, so it never blocks the group.
- Cancels: with a ``cancel_reader`` (a connection of its own: it blocks), the cancels stream is
  followed (``workers.cancels``).
- Shutdown: stop claiming, give running jobs ``SHUTDOWN_GRACE_SECONDS``, then cancel the rest and
  hand them over on every stream (reclaimable at once, no delivery counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.tasks import cancel_until_done
from service.generations.task import GenerationTask
from service.jobs.lease import Leases
from service.jobs.messages import Delivery, EntryRef
from service.jobs.stream import JobStream
from workers.cancels import follow_cancels
from workers.claiming import Claimer
from workers.handling import JobHandler, Notify
from workers.slots import ModelSlots

log = structlog.get_logger(__name__)

PRUNE_EVERY = 5.0  # seconds between trims of acknowledged entries
STALE_CONSUMER_MS = 3_600_000  # a consumer silent this long, with nothing pending, is removed
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
        cancel_reader: Redis | None = None,
    ) -> None:
        """``limits``: slots per model (``workers.slots.model_limits``), the models whose streams
        this worker reads; by default every model of the registry, with ``concurrency`` slots."""
        self.stream, self.task, self._reader, self.name = stream, task, reader, name
        self._cancel_reader = cancel_reader
        self.lease_ms = int(lease_seconds * 1000)
        if limits is None:
            limits = dict.fromkeys(task.registry.names(), concurrency)
        self.slots = ModelSlots(limits, default=concurrency)
        self.streams = [stream.keys.queue(m) for m in self.slots.limits] + [stream.keys.legacy_jobs_stream]
        self.leases = Leases(stream, name, lease_seconds, on_lost=self._lost)
        self.handler = JobHandler(stream, task, self.leases, notify)
        self.claimer = Claimer(
            stream, reader, name=name, slots=self.slots, lease_ms=self.lease_ms, renew_every=self.leases.every
        )
        self.active: dict[EntryRef, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
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
                follow = follow_cancels(self.stream, self._cancel_reader, self.task)
                self._upkeep.append(asyncio.create_task(follow, name="cancels"))
        while not self._stopping.is_set():
            try:
                await self.stream.ensure_groups(self.slots.limits)
                break
            except (RedisError, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
                await self._pause(1.0)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = self.slots.free_slots()
                if not free:  # every model is full: claim nothing until a job ends
                    if self.active:
                        await asyncio.wait(list(self.active.values()), return_when=asyncio.FIRST_COMPLETED, timeout=0.5)
                    else:
                        await self._pause(0.5)
                    continue
                for entry, since in await self._next(free, stop):
                    self._start(entry, since)
        finally:
            stop.cancel()

    async def _next(self, free: dict[str, int], stop: asyncio.Future[Any]) -> list[tuple[Delivery, float]]:
        """Jobs of dead workers first (every few seconds), then new ones; [] when stopping."""
        since = time.monotonic()
        claim = asyncio.ensure_future(self.claimer.claim(free, since))
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
        except (RedisError, OSError) as exc:
            await self._pause(await self.claimer.failed(exc))
            return []
        return [] if self._stopping.is_set() else [(entry, since) for entry in found]

    def _start(self, entry: Delivery, since: float) -> None:
        ref = entry.ref
        self.leases.hold(ref, since)
        if ref in self.active:  # ours, still running: reclaimed by this very worker after
            return  # a stall longer than the lease (XAUTOCLAIM takes any idle entry); it runs on, renewed
        model = entry.job.model if entry.job is not None and self.task.accepts(entry.job) else None
        turn = self.slots.take(model) if model is not None else None  # taken now: the next claim counts it
        task = asyncio.create_task(self.handler.handle(entry, turn), name=f"job-{entry.message_id}")
        self.active[ref] = task

        def done(_: asyncio.Task[None]) -> None:
            self.active.pop(ref, None)
            self.leases.release(ref)
            if model is not None:
                self.slots.give_back(model, turn)
                self.claimer.wake(model)

        task.add_done_callback(done)

    def _lost(self, ref: EntryRef) -> None:
        task = self.active.get(ref)
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
            handed = await self.stream.hand_over(self.name, self.streams, self.lease_ms)
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
                await self.stream.prune(self.streams, STALE_CONSUMER_MS)
            except (RedisError, OSError) as exc:
                log.debug("worker.prune_failed", error=str(exc) or type(exc).__name__)

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
