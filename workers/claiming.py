"""What a worker claims next, for its scheduling loop (``workers.scheduler``): the jobs of dead
workers every few seconds (``XAUTOCLAIM``, per stream of a model with a free slot, after moving the
legacy shared stream's undelivered jobs to their streams), else new ones, never more of a model
than its free slots; and the wake-up of a claim blocked on other models' streams when a slot of a
model it does not read frees (``CLIENT UNBLOCK``; such a claim blocks 50 ms at most, as the
unblock may reach Redis before the read it ends). Every Redis command is a ``JobStream`` method.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from service.core.redis import BLOCK_MS
from service.jobs.messages import Delivery
from service.jobs.stream import JobStream
from workers.slots import ModelSlots

log = structlog.get_logger(__name__)

RECLAIM_AT_MOST_EVERY = 5.0  # seconds; shorter when the lease is (renewals come every lease / 3)
FULL_MODEL_BLOCK_MS = 50  # the longest a claim blocks while a model's slots are full


class Claimer:
    def __init__(
        self, stream: JobStream, reader: Redis, *, name: str, slots: ModelSlots, lease_ms: int, renew_every: float
    ) -> None:
        """``reader``: a connection of the claims' own (it blocks); ``renew_every``: how often
        owners renew their leases (an outage gives them two periods before anything is reclaimed)."""
        self.stream, self._reader, self.name, self.slots = stream, reader, name, slots
        self.lease_ms, self._renew_every = lease_ms, renew_every
        self.reclaim_every = min(renew_every, RECLAIM_AT_MOST_EVERY)
        self.reclaim_at = 0.0  # the next reclaim, on the monotonic clock
        self._cursors: dict[str, str] = {}  # XAUTOCLAIM's cursor, per stream
        self._claiming: frozenset[str] | None = None  # the models of the claim in flight
        self._reader_id: int | None = None  # the claim connection's id, for CLIENT UNBLOCK
        self._unblocking: set[asyncio.Task[None]] = set()

    def claim(self, free: dict[str, int], since: float) -> Awaitable[list[Delivery]]:
        """Jobs of dead workers (when a reclaim is due and finds some), else new jobs."""
        self._claiming = frozenset(free)  # now, not when the claim starts: a slot may free before
        return self._claim(free, since)

    async def _claim(self, free: dict[str, int], since: float) -> list[Delivery]:
        try:
            if since >= self.reclaim_at:
                self.reclaim_at = since + self.reclaim_every
                stale = await self._reclaim(free)
                if stale:
                    return stale
            if self._reader_id is None:
                self._reader_id = await self.stream.reader_id(self._reader)
            # Blocked on some models' streams only, the read waits briefly: the wake-up below can
            # reach Redis before the read does (a no-op then), and a freed slot must not wait 2 s.
            block_ms = BLOCK_MS if len(free) == len(self.slots.limits) else FULL_MODEL_BLOCK_MS
            return await self.stream.claim(self._reader, self.name, free, block_ms)
        finally:
            self._claiming = None

    def lost_connection(self, *, outage: bool) -> None:
        """The claim's connection failed (a new one has a new id); after an ``outage``, owners get
        time to renew their leases before anything is reclaimed."""
        self._reader_id = None
        if outage:
            self.reclaim_at = time.monotonic() + 2 * self._renew_every + 1.0

    async def failed(self, exc: RedisError | OSError) -> float:
        """A claim failed with ``exc``: recover what can be (a group Redis lost with its data is
        made again) and say how many seconds the scheduler pauses before the next claim."""
        if not isinstance(exc, ResponseError):
            self.lost_connection(outage=True)
            log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
            return 1.0
        self.lost_connection(outage=False)
        if "NOGROUP" not in str(exc):
            log.warning("worker.claim_failed", error=str(exc))
            return 1.0
        log.warning("worker.group_missing")  # Redis lost its data (no persistence)
        with contextlib.suppress(RedisError, OSError):
            await self.stream.ensure_groups(self.slots.limits)
        return 0.0

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
                self.reclaim_at = time.monotonic()
            stale += found
        return stale

    def wake(self, model: str) -> None:
        """A slot of ``model`` freed: if the claim in flight may be blocked on other models'
        streams only, end its wait so that this model's jobs are claimed now."""
        if self._claiming is None or model in self._claiming or self._reader_id is None:
            return
        self._claiming = self._claiming | {model}  # one unblock per claim is enough
        unblock = asyncio.create_task(self._unblock(self._reader_id), name="claim-unblock")
        self._unblocking.add(unblock)
        unblock.add_done_callback(self._unblocking.discard)

    async def _unblock(self, client_id: int) -> None:
        try:
            await self.stream.unblock(client_id)
        except (RedisError, OSError) as exc:  # then the read ends by itself within BLOCK_MS
            log.debug("worker.unblock_failed", error=str(exc) or type(exc).__name__)
