"""``JobStream``: every Redis operation of the jobs protocol, producer and consumer side.

Nothing else in the service issues a Redis command for jobs; the API's submission code, the
reply inbox, the lease keeper and the worker's scheduling loop call these methods.

A job's happy path costs, in Redis commands: ``submit`` 2 (SET the owner record, XADD), the
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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.core.keys import Keys
from service.jobs import idempotency, scripts
from service.jobs.idempotency import IdempotencyRecord
from service.jobs.inspection import DeadLetterEntry, QueueCounts, QueueState, WorkerInfo, dead_letter_entry, queued
from service.jobs.messages import (
    DATA_FIELD,
    DeadLetter,
    Delivery,
    JobEvent,
    JobMessage,
    JobReply,
    decode_event,
    decode_reply,
    delivery,
    encode,
)
from service.jobs.outbox import Batch, Outbox

INBOX_MAXLEN = 10_000  # replies an inbox keeps (approximately); its reader consumes them at once
OPEN_FIELD = b"open"  # the field of an inbox's opening entry, which carries no reply
INBOX_TTL_SECONDS = 3_600  # an inbox outlives its process by this long (the process renews it)


EVENTS_MAXLEN = 100_000  # job events kept (approximately); API processes read them as they come
CANCELS_MAXLEN = 10_000  # cancel notices kept (approximately); workers read them as they come


class JobMeta(msgspec.Struct):
    """What Redis knows of a job before (or without) a database record: its owner and when it was
    submitted (the job view), and what a cancel needs: the request (a job cancelled before it was
    charged gets a record of it), the inbox of the process waiting on it and its Idempotency-Key."""

    user_id: str
    submitted_at: float
    model: str
    prompt: str = ""
    source_key: str = ""
    duration: str = ""
    project_id: str | None = None
    inbox: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def of(cls, job: JobMessage) -> JobMeta:
        return cls(
            job.user_id,
            job.submitted_at,
            job.model,
            prompt=job.prompt,
            source_key=job.source_key,
            duration=job.duration,
            project_id=job.project_id,
            inbox=job.inbox,
            idempotency_key=job.idempotency_key,
        )


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
            for name in ("SUBMIT_IDEMPOTENT", "COPY_REPLY", "RENEW", "HAND_OVER", "HAND_BACK", "PRUNE", "CANCEL")
        }
        self._scripts["REQUEUE"] = redis.register_script(scripts.REQUEUE)
        self._outbox = Outbox(self._write)

    # -- producer (API) ------------------------------------------------------------------------

    async def submit(self, job: JobMessage, idem: IdempotentRequest | None = None) -> Submitted:
        """Queue ``job`` with its owner record; with ``idem``, bind the key first, atomically, or
        return the job it is already bound to (the caller compares the body hashes)."""
        meta = msgspec.json.encode(JobMeta.of(job))
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
        entry with every other event and reply written at the same time (``Outbox``)."""
        data = encode(event)
        await self._outbox.add(lambda batch: batch.events.append(data))

    async def events_tail(self) -> str:
        """The id after which a process starting to follow job events now reads them."""
        last = await self.redis.xrevrange(self.keys.events_stream, count=1)
        return _text(last[0][0]) if last else "0-0"

    async def read_events(self, reader: Redis, after: str, block_ms: int) -> tuple[str, list[JobEvent]]:
        """The job events after ``after`` and the id to read after next, waiting up to ``block_ms``
        on ``reader`` (a connection of its own: it blocks)."""
        found = await reader.xread({self.keys.events_stream: after}, count=1_000, block=block_ms)
        events = []
        for _, entries in found or []:
            for message_id, fields in entries:
                after = _text(message_id)
                for i, data in enumerate(fields.values()):  # one event per field (``Outbox``)
                    try:
                        events.append(decode_event(data, after if i == 0 else f"{after}.{i}"))
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        continue  # not ours to fail on: the followers re-read their jobs anyway
        return after, events

    async def cancels_tail(self) -> str:
        """The id after which a worker starting now reads cancel notices."""
        last = await self.redis.xrevrange(self.keys.cancels_stream, count=1)
        return _text(last[0][0]) if last else "0-0"

    async def read_cancels(self, reader: Redis, after: str, block_ms: int) -> tuple[str, list[str]]:
        """Job ids cancelled after ``after``, and the id to read after next, waiting up to
        ``block_ms`` on ``reader`` (a connection of its own: it blocks)."""
        found = await reader.xread({self.keys.cancels_stream: after}, count=1_000, block=block_ms)
        job_ids = []
        for _, entries in found or []:
            for message_id, fields in entries:
                after = _text(message_id)
                if data := fields.get(DATA_FIELD):
                    job_ids.append(_text(data))
        return after, job_ids

    async def open_inbox(self, inbox: str) -> None:
        """Create (or keep alive) an API process's inbox; workers never create one (NOMKSTREAM)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(inbox, {OPEN_FIELD: b"1"}, maxlen=INBOX_MAXLEN, approximate=True)
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
                # One reply per field (``Outbox``); the inbox's opening entry carries none.
                replies.extend(decode_reply(data) for name, data in fields.items() if name != OPEN_FIELD)
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
        the waiting process's inbox, and acknowledge the job, in that order; in one round trip
        with every other job finishing at the same time (``Outbox``)."""
        data, done = encode(reply), encode(JobEvent(job_id=job.job_id, status="done"))

        def fill(batch: Batch) -> None:
            batch.replies.append((job, data))
            batch.events.append(done)
            batch.acks.append(message_id)

        await self._outbox.add(fill)

    async def _write(self, batch: Batch) -> None:
        """One batch of the outbox: replies, then inbox entries and events, then the acks."""
        inboxes: dict[str, dict[str, bytes]] = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for job, data in batch.replies:
                self._keep_reply(pipe, job, data)
                if job.inbox:
                    inboxes.setdefault(job.inbox, {})[job.job_id] = data
            for inbox, replies in inboxes.items():
                pipe.xadd(inbox, replies, maxlen=INBOX_MAXLEN, approximate=True, nomkstream=True)
            if batch.events:
                events = {str(i): event for i, event in enumerate(batch.events)}
                pipe.xadd(self.keys.events_stream, events, maxlen=EVENTS_MAXLEN, approximate=True)
            if batch.acks:
                pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, *batch.acks)
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

    def _keep_reply(self, pipe: Any, job: JobMessage, data: bytes) -> None:
        """The reply's key (the first written stands) and its copy on the job's Idempotency-Key."""
        pipe.set(self.keys.reply(job.job_id), data, nx=True, ex=self.reply_ttl)
        if job.idempotency_key:
            script = self._scripts["COPY_REPLY"]
            pipe.scripts.add(script)  # the pipeline loads it first if Redis does not know it
            pipe.evalsha(script.sha, 1, self.keys.idempotency(job.user_id, job.idempotency_key), data)

    def _reply(self, pipe: Any, job: JobMessage, data: bytes) -> None:
        self._keep_reply(pipe, job, data)
        if job.inbox:
            pipe.xadd(job.inbox, {DATA_FIELD: data}, maxlen=INBOX_MAXLEN, approximate=True, nomkstream=True)
        done = encode(JobEvent(job_id=job.job_id, status="done"))
        pipe.xadd(self.keys.events_stream, {DATA_FIELD: done}, maxlen=EVENTS_MAXLEN, approximate=True)

    # -- operators (the console and the admin API) ---------------------------------------------

    async def _group_info(self) -> tuple[int, dict | None]:
        """The dead letters' count and the workers' group as ``XINFO GROUPS`` tells it (None
        before any worker made it)."""
        dead = int(await self.redis.xlen(self.keys.dead_letter_stream))
        try:
            groups = await self.redis.xinfo_groups(self.keys.jobs_stream)
        except ResponseError:  # no jobs stream yet
            return dead, None
        return dead, next((g for g in groups if _text(g["name"]) == self.keys.jobs_group), None)

    async def queue_state(self, limit: int = 100) -> QueueState:
        """Counts of waiting and running jobs, the first ``limit`` of each, the workers of the
        group and the number of dead letters (before any worker ran: all zero)."""
        stream, group = self.keys.jobs_stream, self.keys.jobs_group
        dead, info = await self._group_info()
        if info is None:
            return QueueState(waiting=0, running=0, waiting_jobs=[], running_jobs=[], workers=[], dead_letters=dead)
        fresh = await self.redis.xrange(stream, min=f"({_text(info['last-delivered-id'])}", max="+", count=limit)
        waiting_jobs = [queued(_text(m), f.get(DATA_FIELD)) for m, f in fresh]
        held = await self.redis.xpending_range(stream, group, min="-", max="+", count=limit)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in held:
                pipe.xrange(stream, min=entry["message_id"], max=entry["message_id"], count=1)
            bodies = await pipe.execute()
        running_jobs = [
            queued(
                _text(entry["message_id"]),
                body[0][1].get(DATA_FIELD) if body else None,
                consumer=_text(entry["consumer"]),
                idle_ms=int(entry["time_since_delivered"]),
                deliveries=int(entry["times_delivered"]),
            )
            for entry, body in zip(held, bodies)
        ]
        workers = [
            WorkerInfo(name=_text(c["name"]), pending=int(c["pending"]), idle_ms=int(c["idle"]))
            for c in await self.redis.xinfo_consumers(stream, group)
        ]
        # ``lag`` is unknown to Redis after some deletions; the entries read above are then the floor.
        lag = info.get("lag")
        return QueueState(
            waiting=len(waiting_jobs) if lag is None else int(lag),
            running=int(info["pending"]),
            waiting_jobs=waiting_jobs,
            running_jobs=running_jobs,
            workers=workers,
            dead_letters=dead,
        )

    async def queue_counts(self) -> QueueCounts:
        """Waiting, running and dead-letter counts and the oldest waiting job's age (4 commands)."""
        stream = self.keys.jobs_stream
        dead, info = await self._group_info()
        if info is None:
            return QueueCounts(waiting=0, running=0, dead_letters=dead, oldest_waiting_seconds=0.0)
        first = await self.redis.xrange(stream, min=f"({_text(info['last-delivered-id'])}", max="+", count=1)
        oldest = 0.0
        if first:
            oldest = max(time.time() - int(_text(first[0][0]).split("-")[0]) / 1000, 0.0)
        lag = info.get("lag")
        return QueueCounts(
            waiting=(1 if first else 0) if lag is None else int(lag),  # lag unknown after deletions: a floor
            running=int(info["pending"]),
            dead_letters=dead,
            oldest_waiting_seconds=oldest,
        )

    async def dead_letters(self, *, limit: int, before: str | None = None) -> tuple[list[DeadLetterEntry], str | None]:
        """A page of dead letters, newest first, after ``before`` (the last id of the previous
        page, checked by the caller); and the id to pass for the next page (None on the last)."""
        top = f"({before}" if before else "+"
        rows = await self.redis.xrevrange(self.keys.dead_letter_stream, max=top, min="-", count=limit + 1)
        entries = [dead_letter_entry(_text(m), f.get(DATA_FIELD)) for m, f in rows[:limit]]
        return entries, (entries[-1].id if len(rows) > limit else None)

    async def dead_letter_of(self, dead_id: str) -> DeadLetterEntry | None:
        """One dead letter by its id (checked by the caller), or None."""
        rows = await self.redis.xrange(self.keys.dead_letter_stream, min=dead_id, max=dead_id, count=1)
        return dead_letter_entry(_text(rows[0][0]), rows[0][1].get(DATA_FIELD)) if rows else None

    async def requeue_dead_letter(self, dead_id: str, job: JobMessage) -> str | None:
        """Put ``job`` (the letter's, read by ``dead_letter_of``) back on the jobs stream as a new
        entry and delete the letter, atomically: a letter is requeued once however many operators
        click. Nobody waits for its reply (``inbox`` is dropped); its old reply and the copy on
        its Idempotency-Key are removed so that the requeued run's outcome is the job's. Returns
        the new entry's id, or None when the letter is already gone."""
        keys = [
            self.keys.dead_letter_stream,
            self.keys.jobs_stream,
            self.keys.reply(job.job_id),
            self.keys.job_meta(job.job_id),
        ]
        if job.idempotency_key:
            keys.append(self.keys.idempotency(job.user_id, job.idempotency_key))
        requeued = msgspec.structs.replace(job, inbox=None)
        meta = msgspec.json.encode(JobMeta.of(requeued))
        data = encode(requeued)
        added = await self._scripts["REQUEUE"](keys=keys, args=[dead_id, data, meta, self.meta_ttl, job.job_id])
        return None if added is None else _text(added)

    async def discard_dead_letter(self, dead_id: str) -> bool:
        """Delete a dead letter; False when it was already gone."""
        return bool(await self.redis.xdel(self.keys.dead_letter_stream, dead_id))
