"""The workers' claims on ``JobStream``: new jobs, jobs of dead workers, the wake-up of a blocked
claim, and the move off the legacy shared stream.

Every model has its jobs stream (``Keys.queue``), with the same consumer group on each. A worker
claims only from the streams of models it has a free slot for, never more from one than its free
slots: a job of a busy model stays in its stream, undelivered, for a worker with room for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis

from service.jobs.base import StreamBase, text
from service.jobs.messages import Delivery, delivery


class ClaimSide(StreamBase):
    async def claim(self, reader: Redis, consumer: str, free: Mapping[str, int], block_ms: int) -> list[Delivery]:
        """New jobs for ``consumer``: at most ``free[model]`` of each model's, waiting up to
        ``block_ms`` on ``reader`` when none is there. XREADGROUP's COUNT holds for each stream it
        reads, so the streams are read each with its own count (one round trip), and only when
        all are empty does one blocking read wait on all of them, one job each at most."""
        free = {model: n for model, n in free.items() if n > 0}
        if not free:
            return []
        if len(free) > 1:
            async with self.redis.pipeline(transaction=False) as pipe:
                for model, n in free.items():
                    pipe.xreadgroup(self.keys.jobs_group, consumer, {self.keys.queue(model): ">"}, count=n)
                found = [stream for read in await pipe.execute() for stream in read or []]
            if found:
                return _deliveries(found)
        streams = {self.keys.queue(model): ">" for model in free}
        count = next(iter(free.values())) if len(free) == 1 else 1
        return _deliveries(
            await reader.xreadgroup(self.keys.jobs_group, consumer, streams, count=count, block=block_ms) or []
        )

    async def reclaim(
        self, stream: str, consumer: str, count: int, idle_ms: int, cursor: str
    ) -> tuple[str, list[Delivery]]:
        """Jobs of ``stream`` idle for ``idle_ms`` (their worker died), taken over by ``consumer``;
        and the next cursor."""
        cursor, stale, *_ = await self.redis.xautoclaim(
            stream, self.keys.jobs_group, consumer, min_idle_time=idle_ms, start_id=cursor, count=count
        )
        claimed = [(text(m), f) for m, f in stale if f]
        async with self.redis.pipeline(transaction=False) as pipe:  # their delivery counts: one round trip
            for message_id, _ in claimed:
                pipe.xpending_range(stream, self.keys.jobs_group, min=message_id, max=message_id, count=1)
            infos = await pipe.execute() if claimed else []
        out = [
            delivery(stream, message_id, fields, int(info[0]["times_delivered"]) if info else 1)
            for (message_id, fields), info in zip(claimed, infos, strict=True)
        ]
        return text(cursor), out

    async def reader_id(self, reader: Redis) -> int:
        """The id Redis knows ``reader``'s connection by (``unblock`` names it)."""
        return int(await reader.client_id())

    async def unblock(self, client_id: int) -> None:
        """End the blocking read of connection ``client_id`` as if it timed out (a no-op when it
        is not blocked)."""
        await self.redis.client_unblock(client_id)

    async def migrate_legacy(self, models: Iterable[str]) -> tuple[int, int]:
        """Move the legacy shared stream's undelivered jobs of ``models`` to their streams
        (``scripts.MIGRATE``); returns how many moved and how many are still pending there."""
        names = list(models)
        keys = [self.keys.legacy_jobs_stream, self.keys.dead_letter_stream, self.keys.queues]
        keys += [self.keys.queue(m) for m in names]
        args = [self.keys.jobs_group, self.dead_letter_maxlen, *names]
        moved, pending = await self._scripts["MIGRATE"](keys=keys, args=args)
        return int(moved), int(pending)


def _deliveries(found: list[Any]) -> list[Delivery]:
    """XREADGROUP's answer as deliveries (an entry deleted since it was added has no fields)."""
    return [delivery(text(stream), text(m), f, 1) for stream, entries in found for m, f in entries if f]
