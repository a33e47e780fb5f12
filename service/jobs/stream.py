"""``JobStream``: every Redis operation of the jobs protocol, producer and consumer side.

Nothing else in the service issues a Redis command for jobs; the API's submission code, the
reply inbox, the lease keeper and the worker's scheduling loop call these methods.

A job's happy path costs, in Redis commands: ``submit`` 2 in one round trip (SET the owner
record, XADD to its model's jobs stream; SADD the model to the set of streams too, with a
process's first job of the model and then once a minute), the
worker's ``claim`` 1 shared by every job it returns, and at its end a SET NX of the reply with its
expiry; the rest of its end (the reply added to the waiting process's inbox, its ``running`` and
``done`` events, the XACK) goes in entries and commands shared by every job finishing at the same
time (``Outbox``: under load about one command per job in all). The inbox read is 1 shared by every
reply it returns. Job events go to one stream that each API process reads once (``JobWatchers``).
Acknowledged entries are trimmed by ``prune`` (a worker's housekeeping), not one by one.
Replies are written once: the first one stands.
"""

from __future__ import annotations

import time

import msgspec

from service.jobs import idempotency
from service.jobs.base import CANCELS_MAXLEN, EVENTS_MAXLEN, INBOX_MAXLEN, INBOX_TTL_SECONDS, OPEN_FIELD, text
from service.jobs.claims import ClaimSide
from service.jobs.consumer import ConsumerSide
from service.jobs.feeds import FeedsSide
from service.jobs.idempotency import IdempotencyRecord
from service.jobs.messages import DATA_FIELD, JobEvent, JobMessage, JobReply, decode_reply, encode
from service.jobs.meta import IdempotentRequest, JobMeta, Submitted
from service.jobs.operators import OperatorSide

__all__ = [
    "CANCELS_MAXLEN",
    "EVENTS_MAXLEN",
    "INBOX_MAXLEN",
    "INBOX_TTL_SECONDS",
    "OPEN_FIELD",
    "IdempotentRequest",
    "JobMeta",
    "JobStream",
    "Submitted",
]


LIST_AGAIN_SECONDS = 60.0  # how often a process adds a model it queues for to ``Keys.queues``


class JobStream(FeedsSide, ClaimSide, ConsumerSide, OperatorSide):
    """The jobs streams, their consumer group, the inboxes, replies and dead letters of one prefix."""

    async def submit(self, job: JobMessage, idem: IdempotentRequest | None = None) -> Submitted:
        """Queue ``job`` with its owner record; with ``idem``, bind the key first, atomically, or
        return the job it is already bound to (the caller compares the body hashes)."""
        meta = msgspec.json.encode(JobMeta.of(job))
        if idem is None:
            # The model joins the set of streams (operators' views) once a minute per process, not
            # with every job: workers add theirs at start and whenever Redis lost its groups.
            now = time.monotonic()
            listed = now < self._listed.get(job.model, 0.0)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.job_meta(job.job_id), meta, ex=self.meta_ttl)
                pipe.xadd(self.keys.queue(job.model), {DATA_FIELD: encode(job)})
                if not listed:
                    pipe.sadd(self.keys.queues, job.model)
                await pipe.execute()
            if not listed:
                self._listed[job.model] = now + LIST_AGAIN_SECONDS
            return Submitted(job.job_id)
        keys = [
            self.keys.queue(job.model),
            self.keys.job_meta(job.job_id),
            self.keys.idempotency(job.user_id, idem.key),
            self.keys.queues,
        ]
        args = [
            encode(job),
            meta,
            self.meta_ttl,
            job.job_id,
            idem.body_hash,
            repr(time.time()),
            self.idempotency_ttl,
            job.model,
        ]
        result = await self._scripts["SUBMIT_IDEMPOTENT"](keys=keys, args=args)
        if text(result[0]) == "existing":
            earlier = idempotency.parse(result[1])
            assert earlier is not None
            return Submitted(earlier.job_id, earlier=earlier)
        return Submitted(job.job_id)

    async def backlog(self) -> int:
        """Entries on the jobs streams (every model's, and the legacy one): jobs waiting or
        running, and ones acknowledged since the last ``prune`` (a few seconds' worth)."""
        streams = await self.job_streams()
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xlen(stream)
            return sum(int(n) for n in await pipe.execute())

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

    async def announce_cancel(self, job_id: str, reply: JobReply, meta: JobMeta | None) -> JobReply | None:
        """A job was cancelled (its record says so): write its reply (once), copy it to its
        Idempotency-Key and the waiting process's inbox, and tell every worker (the cancels
        stream), atomically. None when written; else the reply that was there first."""
        keys = [self.keys.reply(job_id), self.keys.cancels_stream, self.keys.events_stream]
        idem_at = inbox_at = 0
        if meta is not None and meta.idempotency_key:
            keys.append(self.keys.idempotency(meta.user_id, meta.idempotency_key))
            idem_at = len(keys)
        if meta is not None and meta.inbox:
            keys.append(meta.inbox)
            inbox_at = len(keys)
        done = encode(JobEvent(job_id=job_id, status="done"))
        args = [
            encode(reply),
            self.reply_ttl,
            job_id,
            CANCELS_MAXLEN,
            idem_at,
            inbox_at,
            INBOX_MAXLEN,
            done,
            EVENTS_MAXLEN,
        ]
        earlier = await self._scripts["CANCEL"](keys=keys, args=args)
        return decode_reply(earlier) if earlier else None

    async def publish(self, event: JobEvent) -> None:
        """Tell the API processes following the job (Server-Sent Events) that it changed; in one
        entry with every other event and reply written at the same time (``Outbox``). Not waited
        for: an event is best effort (a follower also re-reads the job), and it still goes before
        anything the job writes later (its ``done`` event and reply)."""
        data = encode(event)
        self._outbox.post(lambda batch: batch.events.append(data))
