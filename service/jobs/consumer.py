"""The workers' side of ``JobStream``: claim, reclaim, renew, complete (through the outbox),
dead-letter, hand over, prune; and the move off the legacy shared stream.

Every model has its jobs stream (``Keys.queue``), with the same consumer group on each. A worker
claims only from the streams of models it has a free slot for, never more from one than its free
slots: a job of a busy model stays in its stream, undelivered, for a worker with room for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis

from service.jobs.base import EVENTS_MAXLEN, INBOX_MAXLEN, StreamBase, text
from service.jobs.messages import (
    DATA_FIELD,
    DeadLetter,
    Delivery,
    EntryRef,
    JobEvent,
    JobMessage,
    JobReply,
    delivery,
    encode,
)
from service.jobs.outbox import Batch


class ConsumerSide(StreamBase):
    async def ensure_groups(self, models: Iterable[str]) -> None:
        """The workers' group on the jobs stream of each of ``models`` (made with it if need be)."""
        names = list(models)
        async with self.redis.pipeline(transaction=False) as pipe:
            for model in names:
                pipe.xgroup_create(self.keys.queue(model), self.keys.jobs_group, id="0", mkstream=True)
            if names:
                pipe.sadd(self.keys.queues, *names)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result

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

    async def renew(self, consumer: str, refs: Iterable[EntryRef]) -> set[EntryRef]:
        """Renew the leases of ``refs``; returns those still held (the rest were taken)."""
        by_stream: dict[str, list[str]] = {}
        for ref in refs:
            by_stream.setdefault(ref.stream, []).append(ref.message_id)
        if not by_stream:
            return set()
        script = self._scripts["RENEW"]
        results = await asyncio.gather(
            *(script(keys=[stream], args=[self.keys.jobs_group, consumer, *ids]) for stream, ids in by_stream.items())
        )
        return {EntryRef(stream, text(m)) for stream, kept in zip(by_stream, results) for m in kept}

    async def owns(self, consumer: str, ref: EntryRef) -> bool:
        pending = await self.redis.xpending_range(
            ref.stream, self.keys.jobs_group, min=ref.message_id, max=ref.message_id, count=1, consumername=consumer
        )
        return bool(pending)

    async def complete(self, ref: EntryRef, job: JobMessage, reply: JobReply) -> None:
        """Write the reply (once, with its expiry), copy it to the job's Idempotency-Key, notify
        the waiting process's inbox, and acknowledge the job, in that order; in one round trip
        with every other job finishing at the same time (``Outbox``)."""
        await self._outbox.add(lambda batch: _finish(batch, ref, job, reply))

    async def _write(self, batch: Batch) -> None:
        """One batch of the outbox, in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self._queue(pipe, batch)
            await pipe.execute()

    def _queue(self, pipe: Any, batch: Batch) -> None:
        """A batch's commands: the replies, then inbox entries and events, then the acks."""
        inboxes: dict[str, dict[str, bytes]] = {}
        for job, data in batch.replies:
            pipe.set(self.keys.reply(job.job_id), data, nx=True, ex=self.reply_ttl)  # the first stands
            if job.idempotency_key:
                script = self._scripts["COPY_REPLY"]
                pipe.scripts.add(script)  # the pipeline loads it first if Redis does not know it
                pipe.evalsha(script.sha, 1, self.keys.idempotency(job.user_id, job.idempotency_key), data)
            if job.inbox:
                inboxes.setdefault(job.inbox, {})[job.job_id] = data
        for inbox, replies in inboxes.items():
            pipe.xadd(inbox, replies, maxlen=INBOX_MAXLEN, approximate=True, nomkstream=True)
        if batch.events:
            events = {str(i): event for i, event in enumerate(batch.events)}
            pipe.xadd(self.keys.events_stream, events, maxlen=EVENTS_MAXLEN, approximate=True)
        acks: dict[str, list[str]] = {}
        for ref in batch.acks:
            acks.setdefault(ref.stream, []).append(ref.message_id)
        for stream, ids in acks.items():
            pipe.xack(stream, self.keys.jobs_group, *ids)

    async def dead_letter(self, entry: Delivery, reason: str, reply: JobReply | None = None) -> None:
        """Take an entry off its jobs stream without running it, keeping why; reply if it names a job."""
        job_id = entry.job.job_id if entry.job else (reply.job_id if reply else None)
        dead = DeadLetter(
            message_id=entry.message_id,
            reason=reason,
            data=entry.data[:65_536].decode(errors="replace"),
            job_id=job_id,
            dead_at=time.time(),
            stream=entry.stream,
        )
        batch = Batch()  # written like a finished job's, the ack last
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                self.keys.dead_letter_stream,
                {DATA_FIELD: encode(dead)},
                maxlen=self.dead_letter_maxlen,
                approximate=True,
            )
            if reply is not None and entry.job is not None:
                _finish(batch, entry.ref, entry.job, reply)
            else:
                batch.acks.append(entry.ref)
                if reply is not None:  # not a job, but it names one: its client gets the reply
                    pipe.set(self.keys.reply(reply.job_id), encode(reply), nx=True, ex=self.reply_ttl)
            self._queue(pipe, batch)
            await pipe.execute()

    async def hand_over(self, consumer: str, streams: Iterable[str], idle_ms: int) -> int:
        """Make every job ``consumer`` holds on ``streams`` reclaimable now, without counting a delivery."""
        return sum(await self._each("HAND_OVER", streams, self.keys.jobs_group, consumer, idle_ms))

    async def prune(self, streams: Iterable[str], stale_consumer_ms: int) -> tuple[int, int]:
        """Trim acknowledged entries of ``streams`` and remove their dead consumers; returns how many of each."""
        done = await self._each("PRUNE", streams, self.keys.jobs_group, stale_consumer_ms)
        return sum(int(t) for t, _ in done), sum(int(r) for _, r in done)

    async def _each(self, name: str, streams: Iterable[str], *args: Any) -> list[Any]:
        """One script run on each of ``streams``, at once (EVALSHA each: a pipeline of scripts
        would ask ``SCRIPT EXISTS`` first, every time)."""
        script = self._scripts[name]
        return list(await asyncio.gather(*(script(keys=[stream], args=list(args)) for stream in streams)))

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


def _finish(batch: Batch, ref: EntryRef, job: JobMessage, reply: JobReply) -> None:
    """Put a job's end into ``batch``: its reply, its ``done`` event and its ack."""
    batch.replies.append((job, encode(reply)))
    batch.events.append(encode(JobEvent(job_id=job.job_id, status="done")))
    batch.acks.append(ref)
