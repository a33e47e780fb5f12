"""The workers' side of ``JobStream``: claim, reclaim, renew, complete (through the outbox),
dead-letter, hand over and back, prune."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.jobs.base import EVENTS_MAXLEN, INBOX_MAXLEN, StreamBase, text
from service.jobs.messages import DATA_FIELD, DeadLetter, Delivery, JobEvent, JobMessage, JobReply, delivery, encode
from service.jobs.outbox import Batch


class ConsumerSide(StreamBase):
    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.jobs_stream, self.keys.jobs_group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def claim(self, reader: Redis, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` new jobs for ``consumer``, waiting up to ``block_ms`` on ``reader``."""
        found = await reader.xreadgroup(
            self.keys.jobs_group, consumer, {self.keys.jobs_stream: ">"}, count=count, block=block_ms
        )
        return [delivery(text(m), f, 1) for _, entries in found or [] for m, f in entries if f]

    async def reclaim(self, consumer: str, count: int, idle_ms: int, cursor: str) -> tuple[str, list[Delivery]]:
        """Jobs idle for ``idle_ms`` (their worker died), taken over by ``consumer``; and the next cursor."""
        cursor, stale, *_ = await self.redis.xautoclaim(
            self.keys.jobs_stream, self.keys.jobs_group, consumer, min_idle_time=idle_ms, start_id=cursor, count=count
        )
        claimed = [(text(m), f) for m, f in stale if f]
        async with self.redis.pipeline(transaction=False) as pipe:  # their delivery counts: one round trip
            for message_id, _ in claimed:
                pipe.xpending_range(
                    self.keys.jobs_stream, self.keys.jobs_group, min=message_id, max=message_id, count=1
                )
            infos = await pipe.execute() if claimed else []
        out = [
            delivery(message_id, fields, int(info[0]["times_delivered"]) if info else 1)
            for (message_id, fields), info in zip(claimed, infos, strict=True)
        ]
        return text(cursor), out

    async def renew(self, consumer: str, message_ids: Iterable[str]) -> set[str]:
        """Renew the leases of ``message_ids``; returns those still held (the rest were taken)."""
        ids = list(message_ids)
        if not ids:
            return set()
        kept = await self._scripts["RENEW"](keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, consumer, *ids])
        return {text(m) for m in kept}

    async def owns(self, consumer: str, message_id: str) -> bool:
        pending = await self.redis.xpending_range(
            self.keys.jobs_stream, self.keys.jobs_group, min=message_id, max=message_id, count=1, consumername=consumer
        )
        return bool(pending)

    async def complete(self, message_id: str, job: JobMessage, reply: JobReply) -> None:
        """Write the reply (once, with its expiry), copy it to the job's Idempotency-Key, notify
        the waiting process's inbox, and acknowledge the job, in that order; in one round trip
        with every other job finishing at the same time (``Outbox``)."""
        await self._outbox.add(lambda batch: _finish(batch, message_id, job, reply))

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
        if batch.acks:
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, *batch.acks)

    async def dead_letter(self, entry: Delivery, reason: str, reply: JobReply | None = None) -> None:
        """Take an entry off the jobs stream without running it, keeping why; reply if it names a job."""
        job_id = entry.job.job_id if entry.job else (reply.job_id if reply else None)
        dead = DeadLetter(
            message_id=entry.message_id,
            reason=reason,
            data=entry.data[:65_536].decode(errors="replace"),
            job_id=job_id,
            dead_at=time.time(),
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
                _finish(batch, entry.message_id, entry.job, reply)
            else:
                batch.acks.append(entry.message_id)
                if reply is not None:  # not a job, but it names one: its client gets the reply
                    pipe.set(self.keys.reply(reply.job_id), encode(reply), nx=True, ex=self.reply_ttl)
            self._queue(pipe, batch)
            await pipe.execute()

    async def hand_over(self, consumer: str, idle_ms: int) -> int:
        """Make every job ``consumer`` holds reclaimable now, without counting a delivery."""
        return int(
            await self._scripts["HAND_OVER"](
                keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, consumer, idle_ms]
            )
        )

    async def hand_back(self, consumer: str, idle_ms: int, message_ids: list[str]) -> int:
        """Make these jobs of ``consumer`` reclaimable now by any worker, without counting a delivery."""
        if not message_ids:
            return 0
        args = [self.keys.jobs_group, consumer, idle_ms, *message_ids]
        return int(await self._scripts["HAND_BACK"](keys=[self.keys.jobs_stream], args=args))

    async def prune(self, stale_consumer_ms: int) -> tuple[int, int]:
        """Trim acknowledged entries and remove dead consumers; returns how many of each."""
        trimmed, removed = await self._scripts["PRUNE"](
            keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, stale_consumer_ms]
        )
        return int(trimmed), int(removed)


def _finish(batch: Batch, message_id: str, job: JobMessage, reply: JobReply) -> None:
    """Put a job's end into ``batch``: its reply, its ``done`` event and its ack."""
    batch.replies.append((job, encode(reply)))
    batch.events.append(encode(JobEvent(job_id=job.job_id, status="done")))
    batch.acks.append(message_id)
