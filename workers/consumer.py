"""The jobs-stream consumer: claim, run, reply, acknowledge.

One consumer per worker process, running up to ``WORKER_CONCURRENCY`` jobs at once. Delivery is
at-least-once: a job is acknowledged only after its reply is written, and a job left pending by
a dead worker is reclaimed with ``XAUTOCLAIM`` once idle for ``JOB_LEASE_SECONDS``. A live worker
renews its lease on the jobs it runs (``XCLAIM ... JUSTID``), so they are never taken from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from service.core.errors import AppError
from service.core.keys import Keys
from service.core.redis import BLOCK_MS
from service.jobs.messages import DATA_FIELD, JobMessage, JobReply, decode_job, encode
from workers.pipeline import Pipeline, error_reply

log = structlog.get_logger(__name__)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Consumer:
    def __init__(self, redis: Redis, keys: Keys, pipeline: Pipeline, *, concurrency: int, lease_seconds: float,
                 reply_ttl: int, name: str | None = None) -> None:
        self.redis, self.keys, self.pipeline = redis, keys, pipeline
        self.concurrency, self.lease_ms = concurrency, int(lease_seconds * 1000)
        self.reply_ttl = reply_ttl
        self.name = name or consumer_name()
        self.active: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self.redis.xgroup_create(self.keys.jobs_stream, self.keys.jobs_group, id="0", mkstream=True)

    def stop(self) -> None:
        """Stop claiming new jobs; running ones finish (see ``drain``)."""
        self._stopping.set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop``; then return with jobs possibly still running."""
        await self.ensure_group()
        lease = asyncio.create_task(self._renew_leases(), name="lease-renewal")
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self.active)
                if free <= 0:
                    await asyncio.wait(list(self.active.values()), return_when=asyncio.FIRST_COMPLETED, timeout=1)
                    continue
                try:
                    batch = await self._claim(free)
                except RedisError as exc:
                    log.warning("worker.redis_unavailable", error=str(exc))
                    await asyncio.sleep(1.0)
                    continue
                for msg_id, fields, delivery in batch:
                    self._start(msg_id, fields, delivery)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` for running jobs; return how many were left to be reclaimed."""
        if self.active:
            await asyncio.wait(list(self.active.values()), timeout=timeout)
        left = [t for t in self.active.values() if not t.done()]
        for task in left:
            task.cancel()
        return len(left)

    async def _claim(self, count: int) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Reclaimed jobs of dead workers first, then new ones (blocking briefly)."""
        stale = await self.redis.xautoclaim(self.keys.jobs_stream, self.keys.jobs_group, self.name,
                                            min_idle_time=self.lease_ms, start_id="0-0", count=count)
        claimed = [(_id(m), f, 0) for m, f in stale[1] if f]
        if claimed:
            return [(m, f, await self._delivery_count(m)) for m, f, _ in claimed]
        streams = await self.redis.xreadgroup(self.keys.jobs_group, self.name, {self.keys.jobs_stream: ">"},
                                              count=count, block=BLOCK_MS)
        return [(_id(m), f, 1) for _, entries in streams or [] for m, f in entries]

    async def _delivery_count(self, msg_id: str) -> int:
        info = await self.redis.xpending_range(self.keys.jobs_stream, self.keys.jobs_group, min=msg_id, max=msg_id, count=1)
        return int(info[0]["times_delivered"]) if info else 1

    def _start(self, msg_id: str, fields: dict[bytes, bytes], delivery: int) -> None:
        task = asyncio.create_task(self._handle(msg_id, fields, delivery), name=f"job-{msg_id}")
        self.active[msg_id] = task
        task.add_done_callback(lambda _: self.active.pop(msg_id, None))

    async def _handle(self, msg_id: str, fields: dict[bytes, bytes], delivery: int) -> None:
        try:
            job = decode_job(fields)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError) as exc:
            await self._dead_letter(msg_id, fields, f"unparseable job message: {exc}")
            return
        if job.model not in self.pipeline.registry:
            reply = error_reply(job.job_id, AppError(f"Unknown model: {job.model}", 400))
            await self._dead_letter(msg_id, fields, f"unknown model {job.model!r}", reply=(job, reply))
            return
        log.info("job.start", job_id=job.job_id, model=job.model, delivery=delivery)
        reply = await self.pipeline.run(job, delivery)
        await self._finish(msg_id, job, reply)
        log.info("job.done", job_id=job.job_id, status=reply.status_code)

    async def _finish(self, msg_id: str, job: JobMessage, reply: JobReply) -> None:
        """Write the reply (with its expiry, atomically), then acknowledge and drop the job."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(job.reply_stream)  # a redelivered job replaces, never appends, its reply
            pipe.xadd(job.reply_stream, encode(reply))
            pipe.expire(job.reply_stream, self.reply_ttl)
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, msg_id)
            pipe.xdel(self.keys.jobs_stream, msg_id)
            await pipe.execute()

    async def _dead_letter(self, msg_id: str, fields: dict[bytes, bytes], reason: str,
                           reply: tuple[JobMessage, JobReply] | None = None) -> None:
        log.error("job.dead_letter", msg_id=msg_id, reason=reason)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.dead_letter_stream, {DATA_FIELD: fields.get(DATA_FIELD, b""), b"reason": reason.encode(),
                                                     b"id": msg_id.encode()}, maxlen=10_000, approximate=True)
            if reply:
                pipe.xadd(reply[0].reply_stream, encode(reply[1]))
                pipe.expire(reply[0].reply_stream, self.reply_ttl)
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, msg_id)
            pipe.xdel(self.keys.jobs_stream, msg_id)
            await pipe.execute()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease_ms / 3000, 0.2))
            ids = list(self.active)
            if not ids:
                continue
            with contextlib.suppress(RedisError):
                await self.redis.xclaim(self.keys.jobs_stream, self.keys.jobs_group, self.name, 0, ids, justid=True)


def _id(msg_id: bytes | str) -> str:
    return msg_id.decode() if isinstance(msg_id, bytes) else msg_id
