"""The workers' side of ``JobStream`` once a job is claimed (``claims.py``): renew, own,
complete (through the outbox), dead-letter, hand over, prune."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from service.jobs.base import EVENTS_MAXLEN, INBOX_MAXLEN, StreamBase, text
from service.jobs.messages import (
    DATA_FIELD,
    DeadLetter,
    Delivery,
    EntryRef,
    JobEvent,
    JobMessage,
    JobReply,
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


def _finish(batch: Batch, ref: EntryRef, job: JobMessage, reply: JobReply) -> None:
    """Put a job's end into ``batch``: its reply, its ``done`` event and its ack."""
    batch.replies.append((job, encode(reply)))
    batch.events.append(encode(JobEvent(job_id=job.job_id, status="done")))
    batch.acks.append(ref)
