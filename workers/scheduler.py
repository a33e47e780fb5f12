"""The worker's scheduling loop: claim jobs of the models with a free slot, from their jobs
streams and at most their free slots (``workers.slots``), run each as a task, reply and
acknowledge. Every Redis command is a ``JobStream`` method; every step of a job is the
generation's task (``service.generations.task``).

- Delivery is at-least-once, effects exactly-once: a job is acknowledged only with its reply,
  after its record is terminal; a redelivery resumes whatever an earlier one left.
- Leases (``service.jobs.lease``): renewed together every ``JOB_LEASE_SECONDS / 3``; a job found
  taken is cancelled; money and uploads are fenced by ``Leases.check``. Jobs idle past the lease
  (their worker died) are reclaimed every few seconds with ``XAUTOCLAIM``, per stream of a model
  with a free slot.
- Wake-up: the claim may block on the streams of the models that had a free slot; when a slot of
  another model frees meanwhile, the blocked read is ended (``CLIENT UNBLOCK``) so that model's
  jobs are claimed at once, not after the block.
- Upgrade from the one shared stream (``Keys.legacy_jobs_stream``): every reclaim period its
  undelivered jobs of this worker's models are moved to their streams, and its pending ones are
  reclaimed, run and acknowledged there, until it is empty.
- Outages are not attempts (``workers.handling``, which runs each delivery): while the database or
  Redis is unreachable, the job keeps its lease and its run is retried with backoff.
- Poison: an unparseable entry, or a job naming a model this worker does not have, is
  dead-lettered with its reason and a reply, so it never blocks the group.
- Cancels: with a ``cancel_reader`` (a connection of its own: it blocks), the cancels stream is
  followed and a cancelled job this process runs has its model run stopped (``GenerationTask.cancel``).
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
from redis.exceptions import RedisError, ResponseError

from service.core.redis import BLOCK_MS
from service.core.tasks import cancel_until_done
from service.generations.task import GenerationTask
from service.jobs.lease import Leases
from service.jobs.messages import Delivery, EntryRef
from service.jobs.stream import JobStream
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
        self.reclaim_every = min(self.leases.every, 5.0)
        self.active: dict[EntryRef, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._reclaim_at = 0.0  # owners get time to renew after an outage before anyone reclaims
        self._cursors: dict[str, str] = {}  # XAUTOCLAIM's cursor, per stream
        self._upkeep: list[asyncio.Task[None]] = []
        self._claiming: frozenset[str] | None = None  # the models of the claim in flight
        self._reader_id: int | None = None  # the claim connection's id, for CLIENT UNBLOCK
        self._unblocking: set[asyncio.Task[None]] = set()

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
        claim = asyncio.ensure_future(self._claim(free, since))
        self._claiming = frozenset(free)
        try:
            await asyncio.wait([claim, stop], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            claim.cancel()
            claim.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen: no warning later
            raise
        finally:
            self._claiming = None
        if not claim.done():  # stopping: anything it claims is handed over by ``shutdown``
            claim.cancel()
            with contextlib.suppress(BaseException):
                await claim
            return []
        try:
            found = claim.result()
        except ResponseError as exc:
            self._reader_id = None
            if "NOGROUP" in str(exc):  # Redis lost its data (no persistence): recreate the group
                log.warning("worker.group_missing")
                with contextlib.suppress(RedisError, OSError):
                    await self.stream.ensure_groups(self.slots.limits)
            else:
                log.warning("worker.claim_failed", error=str(exc))
                await self._pause(1.0)
            return []
        except (RedisError, OSError) as exc:
            self._reader_id = None  # a new connection: a new id
            log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
            self._reclaim_at = time.monotonic() + 2 * self.leases.every + 1.0
            await self._pause(1.0)
            return []
        return [] if self._stopping.is_set() else [(entry, since) for entry in found]

    async def _claim(self, free: dict[str, int], since: float) -> list[Delivery]:
        if since >= self._reclaim_at:
            self._reclaim_at = since + self.reclaim_every
            stale = await self._reclaim(free)
            if stale:
                return stale
        if self._reader_id is None:
            self._reader_id = int(await self._reader.client_id())
        return await self.stream.claim(self._reader, self.name, free, BLOCK_MS)

    async def _reclaim(self, free: dict[str, int]) -> list[Delivery]:
        """Jobs idle past the lease on the streams of models with a free slot (at most their free
        slots), and the legacy stream's; its undelivered jobs are moved to their streams first."""
        _, pending = await self.stream.migrate_legacy(self.slots.limits)
        wanted = [(self.stream.keys.queue(m), n) for m, n in free.items()]
        if pending:
            wanted.append((self.stream.keys.legacy_jobs_stream, sum(free.values())))
        stale: list[Delivery] = []
        for stream, count in wanted:
            cursor = self._cursors.get(stream, "0-0")
            self._cursors[stream], found = await self.stream.reclaim(stream, self.name, count, self.lease_ms, cursor)
            if len(found) == count:  # a dead worker left more: take the next batch at once, not next period
                self._reclaim_at = time.monotonic()
            stale += found
        return stale

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
                self._wake(model)

        task.add_done_callback(done)

    def _wake(self, model: str) -> None:
        """A slot of ``model`` freed: if the claim in flight may be blocked on other models'
        streams only, end its wait so that this model's jobs are claimed now."""
        if self._claiming is None or model in self._claiming or self._reader_id is None:
            return
        self._claiming = self._claiming | {model}  # one unblock per claim is enough
        unblock = asyncio.create_task(self._unblock(self._reader_id), name="claim-unblock")
        self._unblocking.add(unblock)
        unblock.add_done_callback(self._unblocking.discard)

    async def _unblock(self, client_id: int) -> None:
        try:  # ends the blocked read as if it timed out; a no-op if it is not blocked
            await self.stream.redis.client_unblock(client_id)
        except (RedisError, OSError) as exc:  # then the read ends by itself within BLOCK_MS
            log.debug("worker.unblock_failed", error=str(exc) or type(exc).__name__)

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
