"""The operators' side of ``JobStream`` (the console and the admin API): the queue's state and
counts, and the dead letters: list, read, requeue once, discard."""

from __future__ import annotations

import time

import msgspec
from redis.exceptions import ResponseError

from service.jobs.base import StreamBase, text
from service.jobs.inspection import DeadLetterEntry, QueueCounts, QueueState, WorkerInfo, dead_letter_entry, queued
from service.jobs.messages import DATA_FIELD, JobMessage, encode
from service.jobs.meta import JobMeta


class OperatorSide(StreamBase):
    async def _group_info(self) -> tuple[int, dict | None]:
        """The dead letters' count and the workers' group as ``XINFO GROUPS`` tells it (None
        before any worker made it)."""
        dead = int(await self.redis.xlen(self.keys.dead_letter_stream))
        try:
            groups = await self.redis.xinfo_groups(self.keys.jobs_stream)
        except ResponseError:  # no jobs stream yet
            return dead, None
        return dead, next((g for g in groups if text(g["name"]) == self.keys.jobs_group), None)

    async def queue_state(self, limit: int = 100) -> QueueState:
        """Counts of waiting and running jobs, the first ``limit`` of each, the workers of the
        group and the number of dead letters (before any worker ran: all zero)."""
        stream, group = self.keys.jobs_stream, self.keys.jobs_group
        dead, info = await self._group_info()
        if info is None:
            return QueueState(waiting=0, running=0, waiting_jobs=[], running_jobs=[], workers=[], dead_letters=dead)
        fresh = await self.redis.xrange(stream, min=f"({text(info['last-delivered-id'])}", max="+", count=limit)
        waiting_jobs = [queued(text(m), f.get(DATA_FIELD)) for m, f in fresh]
        held = await self.redis.xpending_range(stream, group, min="-", max="+", count=limit)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in held:
                pipe.xrange(stream, min=entry["message_id"], max=entry["message_id"], count=1)
            bodies = await pipe.execute()
        running_jobs = [
            queued(
                text(entry["message_id"]),
                body[0][1].get(DATA_FIELD) if body else None,
                consumer=text(entry["consumer"]),
                idle_ms=int(entry["time_since_delivered"]),
                deliveries=int(entry["times_delivered"]),
            )
            for entry, body in zip(held, bodies)
        ]
        workers = [
            WorkerInfo(name=text(c["name"]), pending=int(c["pending"]), idle_ms=int(c["idle"]))
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
        first = await self.redis.xrange(stream, min=f"({text(info['last-delivered-id'])}", max="+", count=1)
        oldest = 0.0
        if first:
            oldest = max(time.time() - int(text(first[0][0]).split("-")[0]) / 1000, 0.0)
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
        entries = [dead_letter_entry(text(m), f.get(DATA_FIELD)) for m, f in rows[:limit]]
        return entries, (entries[-1].id if len(rows) > limit else None)

    async def dead_letter_of(self, dead_id: str) -> DeadLetterEntry | None:
        """One dead letter by its id (checked by the caller), or None."""
        rows = await self.redis.xrange(self.keys.dead_letter_stream, min=dead_id, max=dead_id, count=1)
        return dead_letter_entry(text(rows[0][0]), rows[0][1].get(DATA_FIELD)) if rows else None

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
        return None if added is None else text(added)

    async def discard_dead_letter(self, dead_id: str) -> bool:
        """Delete a dead letter; False when it was already gone."""
        return bool(await self.redis.xdel(self.keys.dead_letter_stream, dead_id))
