"""The operators' side of ``JobStream`` (the console and the admin API): the queue's state and
counts over every jobs stream (each model's: ``JobStream.job_streams``), and the dead letters:
list, read, requeue once, discard."""

from __future__ import annotations

import time

import msgspec

from service.jobs.base import StreamBase, text
from service.jobs.inspection import (
    DeadLetterEntry,
    QueueCounts,
    QueuedJob,
    QueueState,
    StreamLoad,
    WorkerInfo,
    dead_letter_entry,
    queued,
)
from service.jobs.messages import DATA_FIELD, JobMessage, encode
from service.jobs.meta import JobMeta


class OperatorSide(StreamBase):
    async def _streams(self) -> list[tuple[str, dict | None, int]]:
        """Every jobs stream with its workers' group as ``XINFO GROUPS`` tells it (None before a
        worker of its model made it) and its length; the legacy stream only while it has entries."""
        streams = await self.job_streams()
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_groups(stream)
                pipe.xlen(stream)
            found = await pipe.execute(raise_on_error=False)
        out = []
        for stream, groups, length in zip(streams, found[::2], found[1::2], strict=True):
            if stream == self.keys.legacy_jobs_stream and not length:
                continue
            info = None if isinstance(groups, Exception) else _group(groups, self.keys.jobs_group)
            out.append((stream, info, 0 if isinstance(length, Exception) else int(length)))
        return out

    def _model(self, stream: str) -> str | None:
        prefix = self.keys.queue("")
        return stream.removeprefix(prefix) if stream.startswith(prefix) else None

    async def _fresh(self, stream: str, info: dict | None, count: int) -> list:
        """The first ``count`` entries no worker has read (all of them before the group exists)."""
        after = f"({text(info['last-delivered-id'])}" if info else "-"
        return await self.redis.xrange(stream, min=after, max="+", count=count)

    async def _held(self, stream: str, limit: int) -> list[QueuedJob]:
        """The first ``limit`` entries of ``stream`` that workers hold, with their bodies."""
        held = await self.redis.xpending_range(stream, self.keys.jobs_group, min="-", max="+", count=limit)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in held:
                pipe.xrange(stream, min=entry["message_id"], max=entry["message_id"], count=1)
            bodies = await pipe.execute()
        return [
            queued(
                text(entry["message_id"]),
                body[0][1].get(DATA_FIELD) if body else None,
                consumer=text(entry["consumer"]),
                idle_ms=int(entry["time_since_delivered"]),
                deliveries=int(entry["times_delivered"]),
            )
            for entry, body in zip(held, bodies)
        ]

    async def queue_state(self, limit: int = 100) -> QueueState:
        """Counts of waiting and running jobs (in all and per jobs stream), the first ``limit``
        of each (oldest first), the workers and the number of dead letters."""
        dead = int(await self.redis.xlen(self.keys.dead_letter_stream))
        loads, waiting_jobs, running_jobs = [], [], []
        workers: dict[str, WorkerInfo] = {}
        for stream, info, length in await self._streams():
            fresh = await self._fresh(stream, info, limit)
            waiting_jobs += [queued(text(m), f.get(DATA_FIELD)) for m, f in fresh]
            lag = info.get("lag") if info else length  # unknown to Redis after some deletions: then a floor
            waiting = len(fresh) if lag is None else int(lag)
            consumers = await self.redis.xinfo_consumers(stream, self.keys.jobs_group) if info else []
            if info:
                running_jobs += await self._held(stream, limit)
            for c in consumers:
                name, seen = text(c["name"]), workers.get(text(c["name"]))
                pending, idle = int(c["pending"]), int(c["idle"])
                if seen is not None:
                    pending, idle = pending + seen.pending, min(idle, seen.idle_ms)
                workers[name] = WorkerInfo(name=name, pending=pending, idle_ms=idle)
            running = int(info["pending"]) if info else 0
            model = self._model(stream)
            loads.append(
                StreamLoad(model=model, stream=stream, waiting=waiting, running=running, workers=len(consumers))
            )
        return QueueState(
            waiting=sum(s.waiting for s in loads),
            running=sum(s.running for s in loads),
            waiting_jobs=sorted(waiting_jobs, key=_age)[:limit],
            running_jobs=sorted(running_jobs, key=_age)[:limit],
            workers=sorted(workers.values(), key=lambda w: w.name),
            dead_letters=dead,
            streams=loads,
        )

    async def queue_counts(self) -> QueueCounts:
        """Waiting, running and dead-letter counts and the oldest waiting job's age (a few
        commands per jobs stream)."""
        dead = int(await self.redis.xlen(self.keys.dead_letter_stream))
        waiting = running = 0
        oldest = 0.0
        for stream, info, length in await self._streams():
            first = await self._fresh(stream, info, 1)
            if first:
                oldest = max(oldest, time.time() - int(text(first[0][0]).split("-")[0]) / 1000)
            lag = info.get("lag") if info else length
            waiting += (1 if first else 0) if lag is None else int(lag)  # lag unknown after deletions: a floor
            running += int(info["pending"]) if info else 0
        return QueueCounts(waiting=waiting, running=running, dead_letters=dead, oldest_waiting_seconds=oldest)

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
        """Put ``job`` (the letter's, read by ``dead_letter_of``) back on its model's jobs stream as a new
        entry and delete the letter, atomically: a letter is requeued once however many operators
        click. Nobody waits for its reply (``inbox`` is dropped); its old reply and the copy on
        its Idempotency-Key are removed so that the requeued run's outcome is the job's. Returns
        the new entry's id, or None when the letter is already gone."""
        keys = [
            self.keys.dead_letter_stream,
            self.keys.queue(job.model),
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


def _group(groups: list[dict], name: str) -> dict | None:
    return next((g for g in groups if text(g["name"]) == name), None)


def _age(q: QueuedJob) -> tuple[int, int]:
    """Stream ids are times (ms) and a sequence: comparable across the streams."""
    ms, _, seq = q.message_id.partition("-")
    return int(ms), int(seq or 0)
