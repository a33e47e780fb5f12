"""``JobStream``: every Redis operation of the jobs protocol, producer and consumer side.

Nothing else in the service issues a Redis command for jobs; the API's submission code, the
reply inbox, the lease keeper and the worker's scheduling loop call these methods.

A job's happy path costs, in Redis commands: ``submit`` 2 (SET the owner record, XADD), the
worker's ``claim`` 1 shared by every job it returns, ``complete`` 3 (SET NX the reply with its
expiry, XADD to the waiting process's inbox, XACK), and the inbox read 1 shared by every reply
it returns. Acknowledged entries are trimmed by ``prune`` (a worker's housekeeping), not one by
one. Replies are written once: the first one stands.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.core.keys import Keys
from service.jobs import idempotency, scripts
from service.jobs.idempotency import IdempotencyRecord
from service.jobs.messages import DATA_FIELD, DeadLetter, Delivery, JobMessage, JobReply, decode_reply, delivery, encode

INBOX_MAXLEN = 10_000  # replies an inbox keeps (approximately); its reader consumes them at once
INBOX_TTL_SECONDS = 3_600  # an inbox outlives its process by this long (the process renews it)


class JobMeta(msgspec.Struct):
    """What Redis knows of a job before (or without) a database record."""

    user_id: str
    submitted_at: float
    model: str


@dataclass(frozen=True)
class IdempotentRequest:
    """The caller's key (already checked) and the hash of the body it came with."""

    key: str
    body_hash: str


@dataclass(frozen=True)
class Submitted:
    """The job that answers a request: the one just queued, or the one its key is bound to."""

    job_id: str
    earlier: IdempotencyRecord | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobStream:
    """The jobs stream, its consumer group, the inboxes, replies and dead letters of one prefix."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        reply_ttl: int,
        meta_ttl: int,
        idempotency_ttl: int,
        dead_letter_maxlen: int = 10_000,
    ) -> None:
        self.redis, self.keys = redis, keys
        self.reply_ttl, self.meta_ttl, self.idempotency_ttl = reply_ttl, meta_ttl, idempotency_ttl
        self.dead_letter_maxlen = dead_letter_maxlen
        self._scripts = {
            name: redis.register_script(getattr(scripts, name))
            for name in ("SUBMIT_IDEMPOTENT", "COPY_REPLY", "RENEW", "HAND_OVER", "PRUNE")
        }

    # -- producer (API) ------------------------------------------------------------------------

    async def submit(self, job: JobMessage, idem: IdempotentRequest | None = None) -> Submitted:
        """Queue ``job`` with its owner record; with ``idem``, bind the key first, atomically, or
        return the job it is already bound to (the caller compares the body hashes)."""
        meta = msgspec.json.encode(JobMeta(job.user_id, job.submitted_at, job.model))
        if idem is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.job_meta(job.job_id), meta, ex=self.meta_ttl)
                pipe.xadd(self.keys.jobs_stream, {DATA_FIELD: encode(job)})
                await pipe.execute()
            return Submitted(job.job_id)
        keys = [self.keys.jobs_stream, self.keys.job_meta(job.job_id), self.keys.idempotency(job.user_id, idem.key)]
        args = [encode(job), meta, self.meta_ttl, job.job_id, idem.body_hash, repr(time.time()), self.idempotency_ttl]
        result = await self._scripts["SUBMIT_IDEMPOTENT"](keys=keys, args=args)
        if _text(result[0]) == "existing":
            earlier = idempotency.parse(result[1])
            assert earlier is not None
            return Submitted(earlier.job_id, earlier=earlier)
        return Submitted(job.job_id)

    async def backlog(self) -> int:
        """Entries on the jobs stream: jobs waiting or running, and ones acknowledged since the
        last ``prune`` (a few seconds' worth)."""
        return int(await self.redis.xlen(self.keys.jobs_stream))

    async def lookup(self, user_id: str, key: str) -> IdempotencyRecord | None:
        """The job an Idempotency-Key is bound to, if any."""
        return idempotency.parse(await self.redis.hgetall(self.keys.idempotency(user_id, key)))

    async def reply_of(self, job_id: str) -> JobReply | None:
        """The reply written for ``job_id``, while Redis keeps it."""
        raw = await self.redis.get(self.keys.reply(job_id))
        return decode_reply(raw) if raw else None

    async def meta(self, job_id: str) -> JobMeta | None:
        raw = await self.redis.get(self.keys.job_meta(job_id))
        return msgspec.json.decode(raw, type=JobMeta) if raw else None

    async def open_inbox(self, inbox: str) -> None:
        """Create (or keep alive) an API process's inbox; workers never create one (NOMKSTREAM)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(inbox, {b"open": b"1"}, maxlen=INBOX_MAXLEN, approximate=True)
            pipe.expire(inbox, INBOX_TTL_SECONDS)
            await pipe.execute()

    async def keep_inbox(self, inbox: str) -> None:
        """Push the inbox's expiry back; recreate it if Redis lost it."""
        if not await self.redis.expire(inbox, INBOX_TTL_SECONDS):
            await self.open_inbox(inbox)

    async def read_inbox(self, reader: Redis, inbox: str, after: str, block_ms: int) -> tuple[str, list[JobReply]]:
        """The replies on ``inbox`` after ``after`` and the id to read after next, waiting up to
        ``block_ms`` on ``reader`` (a connection of its own: it blocks)."""
        found = await reader.xread({inbox: after}, count=1_000, block=block_ms)
        replies = []
        for _, entries in found or []:
            for message_id, fields in entries:
                after = _text(message_id)
                if data := fields.get(DATA_FIELD):  # the inbox's opening entry carries none
                    replies.append(decode_reply(data))
        return after, replies

    # -- consumer (workers) --------------------------------------------------------------------

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
        return [delivery(_text(m), f, 1) for _, entries in found or [] for m, f in entries if f]

    async def reclaim(self, consumer: str, count: int, idle_ms: int, cursor: str) -> tuple[str, list[Delivery]]:
        """Jobs idle for ``idle_ms`` (their worker died), taken over by ``consumer``; and the next cursor."""
        cursor, stale, *_ = await self.redis.xautoclaim(
            self.keys.jobs_stream, self.keys.jobs_group, consumer, min_idle_time=idle_ms, start_id=cursor, count=count
        )
        claimed = [(_text(m), f) for m, f in stale if f]
        out = []
        for message_id, fields in claimed:
            info = await self.redis.xpending_range(
                self.keys.jobs_stream, self.keys.jobs_group, min=message_id, max=message_id, count=1
            )
            out.append(delivery(message_id, fields, int(info[0]["times_delivered"]) if info else 1))
        return _text(cursor), out

    async def renew(self, consumer: str, message_ids: Iterable[str]) -> set[str]:
        """Renew the leases of ``message_ids``; returns those still held (the rest were taken)."""
        ids = list(message_ids)
        if not ids:
            return set()
        kept = await self._scripts["RENEW"](keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, consumer, *ids])
        return {_text(m) for m in kept}

    async def owns(self, consumer: str, message_id: str) -> bool:
        pending = await self.redis.xpending_range(
            self.keys.jobs_stream, self.keys.jobs_group, min=message_id, max=message_id, count=1, consumername=consumer
        )
        return bool(pending)

    async def complete(self, message_id: str, job: JobMessage, reply: JobReply) -> None:
        """Write the reply (once, with its expiry), copy it to the job's Idempotency-Key, notify
        the waiting process's inbox, and acknowledge the job: one round trip, in that order."""
        data = encode(reply)
        async with self.redis.pipeline(transaction=False) as pipe:
            self._reply(pipe, job, data)
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, message_id)
            await pipe.execute()

    async def ack(self, message_id: str) -> None:
        await self.redis.xack(self.keys.jobs_stream, self.keys.jobs_group, message_id)

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
        async with self.redis.pipeline(transaction=False) as pipe:
            if reply is not None and entry.job is not None:
                self._reply(pipe, entry.job, encode(reply))
            elif reply is not None:
                pipe.set(self.keys.reply(reply.job_id), encode(reply), nx=True, ex=self.reply_ttl)
            pipe.xadd(
                self.keys.dead_letter_stream,
                {DATA_FIELD: encode(dead)},
                maxlen=self.dead_letter_maxlen,
                approximate=True,
            )
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, entry.message_id)
            await pipe.execute()

    async def hand_over(self, consumer: str, idle_ms: int) -> int:
        """Make every job ``consumer`` holds reclaimable now, without counting a delivery."""
        return int(
            await self._scripts["HAND_OVER"](
                keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, consumer, idle_ms]
            )
        )

    async def prune(self, stale_consumer_ms: int) -> tuple[int, int]:
        """Trim acknowledged entries and remove dead consumers; returns how many of each."""
        trimmed, removed = await self._scripts["PRUNE"](
            keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, stale_consumer_ms]
        )
        return int(trimmed), int(removed)

    def _reply(self, pipe: Any, job: JobMessage, data: bytes) -> None:
        pipe.set(self.keys.reply(job.job_id), data, nx=True, ex=self.reply_ttl)
        if job.idempotency_key:
            script = self._scripts["COPY_REPLY"]
            pipe.scripts.add(script)  # the pipeline loads it first if Redis does not know it
            pipe.evalsha(script.sha, 1, self.keys.idempotency(job.user_id, job.idempotency_key), data)
        if job.inbox:
            pipe.xadd(job.inbox, {DATA_FIELD: data}, maxlen=INBOX_MAXLEN, approximate=True, nomkstream=True)
