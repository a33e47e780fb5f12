"""The jobs-stream consumer: claim, run, reply, acknowledge.

One consumer per worker process, running up to ``WORKER_CONCURRENCY`` jobs at once.

- Delivery is at-least-once, effects exactly-once: a job is acknowledged (and deleted from the
  stream) only after its record is terminal and its reply written; the pipeline resumes whatever
  an earlier delivery left (see ``workers/pipeline.py``).
- Leases: a job is held by the consumer that has it pending. Every ``JOB_LEASE_SECONDS / 3`` the
  consumer renews the jobs it runs (``XCLAIM ... JUSTID``: resets their idle time, not their
  delivery count) through a script that only renews a job still pending *for this consumer*. A job
  idle for ``JOB_LEASE_SECONDS`` (its worker died) is reclaimed by any consumer with
  ``XAUTOCLAIM``, which counts a delivery. A consumer that finds a job taken from it (it was
  stalled longer than the lease) cancels its run, and re-checks ownership (the fence) before each
  step that costs money: at most one of them charges, pays the provider or uploads.
- Attempts: Redis counts deliveries. After ``JOB_MAX_ATTEMPTS`` the next delivery fails the job
  (refunded, the spec's 500) instead of running it. An outage is not an attempt: when the
  database or Redis is unreachable the consumer keeps the job (and its lease) and retries the run
  with backoff until they are back.
- Poison: an unparseable message, or a job naming a model this worker does not have, goes to the
  dead-letter stream with the reason and is acknowledged (with a reply when it has a job id), so
  it never blocks the group.
- Shutdown (``shutdown``): stop claiming, let running jobs finish for ``SHUTDOWN_GRACE_SECONDS``
  while still renewing their leases, then cancel the rest and hand them over: made reclaimable at
  once, with their delivery count restored (a deploy is not an attempt).
- Housekeeping: consumers of dead processes with nothing pending are deleted from the group after
  an hour, atomically (so no pending entry is ever lost), and nothing else accumulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import time
from typing import Any

import asyncpg
import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from service.core.errors import GenerationFailed, ValidationFailed
from service.core.keys import Keys
from service.core.redis import BLOCK_MS
from service.jobs import idempotency
from service.jobs.messages import DATA_FIELD, JobMessage, JobReply, decode_job, encode
from workers.faults import crash_point
from workers.pipeline import Interrupted, LeaseLost, Pipeline, error_reply

log = structlog.get_logger(__name__)

STALE_CONSUMER_MS = 3_600_000  # a consumer silent this long, with nothing pending, is removed
MAX_OUTAGE_SECONDS = 600.0  # a job retried through an outage this long is left for redelivery instead

# KEYS: jobs stream. ARGV: group, consumer, ids... -> the ids still pending for this consumer (renewed)
_RENEW = """
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

# KEYS: jobs stream. ARGV: group, consumer, idle ms
# -> make every job pending for this consumer reclaimable now, restoring its delivery count
_HAND_OVER = """
local n = 0
for _, e in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000, ARGV[2])) do
  local count = math.max(tonumber(e[4]) - 1, 0)
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, e[1], 'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
  n = n + 1
end
return n
"""

# KEYS: reply stream[, idempotency hash]. ARGV: reply data, reply ttl
# The first reply stands: a redelivered job never replaces what a client may already have read.
_REPLY = """
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('XADD', KEYS[1], '*', '@DATA', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if #KEYS >= 2 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSETNX', KEYS[2], '@REPLY', ARGV[1])
end
return 1
""".replace("@DATA", DATA_FIELD.decode()).replace("@REPLY", idempotency.REPLY_FIELD)

# KEYS: jobs stream. ARGV: group, idle ms -> delete consumers idle that long with nothing pending
_PRUNE = """
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def is_transient(exc: BaseException) -> bool:
    """An outage of the database or Redis (worth retrying the run), not a verdict on the job."""
    if isinstance(exc, Interrupted):
        return exc.transient
    if isinstance(exc, ResponseError):  # a command Redis refused: retrying will not help ...
        return str(exc).startswith(("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY"))  # ... unless these
    return isinstance(exc, (
        RedisError, OSError, asyncio.TimeoutError,
        asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.SerializationError,
        asyncpg.exceptions.DeadlockDetectedError, sqlite3.OperationalError,
    ))


class Consumer:
    def __init__(self, redis: Redis, keys: Keys, pipeline: Pipeline, *, concurrency: int, lease_seconds: float,
                 reply_ttl: int, name: str | None = None, dead_letter_maxlen: int = 10_000) -> None:
        self.redis, self.keys, self.pipeline = redis, keys, pipeline
        self.concurrency, self.lease_ms = concurrency, int(lease_seconds * 1000)
        self.renew_every = max(lease_seconds / 3, 0.1)
        self.reply_ttl, self.dead_letter_maxlen = reply_ttl, dead_letter_maxlen
        self.name = name or consumer_name()
        self.active: dict[str, asyncio.Task[None]] = {}
        self._finishing: set[str] = set()  # replied: past the point where cancelling helps
        self._stopping = asyncio.Event()
        self._autoclaim_cursor = "0-0"
        # After an outage, owners get time to renew their leases before anyone reclaims.
        self._reclaim_from = 0.0
        self._renewer: asyncio.Task[None] | None = None
        self._renew_script = redis.register_script(_RENEW)
        self._hand_over_script = redis.register_script(_HAND_OVER)
        self._reply_script = redis.register_script(_REPLY)
        self._prune_script = redis.register_script(_PRUNE)

    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self.redis.xgroup_create(self.keys.jobs_stream, self.keys.jobs_group, id="0", mkstream=True)

    def stop(self) -> None:
        """Stop claiming new jobs; running ones go on (see ``shutdown``)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop``; then return with jobs possibly still running
        (their leases are renewed until ``shutdown``)."""
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_leases(), name="lease-renewal")
        while not self._stopping.is_set():
            try:
                await self.ensure_group()
                break
            except (RedisError, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
                await self._pause(1.0)
        stop_waiter = asyncio.ensure_future(self._stopping.wait())
        try:
            await self._loop(stop_waiter)
        finally:
            stop_waiter.cancel()

    async def _loop(self, stop_waiter: asyncio.Future[Any]) -> None:
        while not self._stopping.is_set():
            free = self.concurrency - len(self.active)
            if free <= 0:
                await asyncio.wait(list(self.active.values()), return_when=asyncio.FIRST_COMPLETED, timeout=0.5)
                continue
            claim = asyncio.ensure_future(self._claim(free))
            try:
                await asyncio.wait([claim, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                claim.cancel()
                claim.add_done_callback(_retrieve)
                raise
            if not claim.done():  # stopping: do not wait for the blocking read to time out
                claim.cancel()    # (anything it had claimed is handed over by ``shutdown``)
                with contextlib.suppress(BaseException):
                    await claim
                break
            try:
                batch = claim.result()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost its data (no persistence): recreate the group
                    log.warning("worker.group_missing")
                    with contextlib.suppress(RedisError, OSError):
                        await self.ensure_group()
                else:
                    log.warning("worker.claim_failed", error=str(exc))
                    await self._pause(1.0)
                continue
            except (RedisError, OSError) as exc:
                log.warning("worker.redis_unavailable", error=str(exc) or type(exc).__name__)
                self._reclaim_from = time.monotonic() + 2 * self.renew_every + 1.0
                await self._pause(1.0)
                continue
            if self._stopping.is_set():  # read just as we stopped: ``shutdown`` hands them back untouched
                break
            for msg_id, fields, delivery in batch:
                self._start(msg_id, fields, delivery)

    async def shutdown(self, grace: float) -> int:
        """Stop claiming, give running jobs ``grace`` seconds, hand the rest over; returns how many."""
        self.stop()
        if self.active:
            await asyncio.wait(list(self.active.values()), timeout=grace)
        left = {m: t for m, t in self.active.items() if not t.done()}
        for task in left.values():
            task.cancel()
        if left:
            await asyncio.wait(list(left.values()), timeout=10)
        handed = 0
        try:  # the cancelled jobs, and any claimed but never started
            handed = int(await self._hand_over_script(keys=[self.keys.jobs_stream],
                                                      args=[self.keys.jobs_group, self.name, self.lease_ms]))
        except (RedisError, OSError) as exc:  # then they are reclaimed after the lease instead
            log.warning("worker.hand_over_failed", error=str(exc) or type(exc).__name__)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        log.info("worker.drained", left=len(left), handed_over=handed)
        return len(left)

    async def drain(self, timeout: float) -> int:
        """Compatibility name for ``shutdown``."""
        return await self.shutdown(timeout)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _claim(self, count: int) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Jobs of dead workers first (idle past the lease), then new ones (blocking briefly)."""
        if time.monotonic() >= self._reclaim_from:
            cursor, stale, *_ = await self.redis.xautoclaim(
                self.keys.jobs_stream, self.keys.jobs_group, self.name, min_idle_time=self.lease_ms,
                start_id=self._autoclaim_cursor, count=count)
            self._autoclaim_cursor = _id(cursor)
            claimed = [(_id(m), f) for m, f in stale if f]
            if claimed:
                counts = await self._delivery_counts([m for m, _ in claimed])
                return [(m, f, counts.get(m, 1)) for m, f in claimed]
        streams = await self.redis.xreadgroup(self.keys.jobs_group, self.name, {self.keys.jobs_stream: ">"},
                                              count=count, block=BLOCK_MS)
        return [(_id(m), f, 1) for _, entries in streams or [] for m, f in entries if f]

    async def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for msg_id in ids:
            info = await self.redis.xpending_range(self.keys.jobs_stream, self.keys.jobs_group,
                                                   min=msg_id, max=msg_id, count=1)
            out[msg_id] = int(info[0]["times_delivered"]) if info else 1
        return out

    def _start(self, msg_id: str, fields: dict[bytes, bytes], delivery: int) -> None:
        task = asyncio.create_task(self._handle(msg_id, fields, delivery), name=f"job-{msg_id}")
        self.active[msg_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self.active.pop(msg_id, None)
            self._finishing.discard(msg_id)

        task.add_done_callback(done)

    async def _owns(self, msg_id: str) -> bool:
        pending = await self.redis.xpending_range(self.keys.jobs_stream, self.keys.jobs_group, min=msg_id,
                                                  max=msg_id, count=1, consumername=self.name)
        return bool(pending)

    async def _handle(self, msg_id: str, fields: dict[bytes, bytes], delivery: int) -> None:
        try:
            job = decode_job(fields)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError) as exc:
            await self._retrying(lambda: self._dead_letter(msg_id, fields, f"unparseable job message: {exc}",
                                                           reply=_salvage_reply(fields, self.keys)))
            return
        log.info("job.start", job_id=job.job_id, model=job.model, delivery=delivery)

        async def fence() -> None:
            if not await self._owns(msg_id):
                raise LeaseLost(f"job {job.job_id} was reclaimed by another worker")

        async def attempt() -> None:
            if await self._replied(job):  # an earlier delivery answered; only the ack was missing
                await self._ack(msg_id)
                return
            if job.model not in self.pipeline.registry:
                err = ValidationFailed([f"model must be one of the following values: "
                                        f"{', '.join(self.pipeline.registry.names())}"])
                reply = await self.pipeline.reject(job, err)
                await self._dead_letter(msg_id, fields, f"unknown model {job.model!r}", reply=(job, reply))
                return
            reply = await self.pipeline.run(job, delivery, fence=fence)
            await self._reply(job, reply)
            self._finishing.add(msg_id)
            crash_point("before_ack", job.job_id)
            await self._ack(msg_id)
            log.info("job.done", job_id=job.job_id, status=reply.status_code, delivery=delivery)

        try:
            await self._retrying(attempt)
        except LeaseLost as exc:
            log.warning("job.lease_lost", job_id=job.job_id, error=str(exc))

    async def _retrying(self, step: Any) -> None:
        """Run ``step`` until it completes, retrying through outages (the job keeps its lease).

        Any other error, or an outage longer than ``MAX_OUTAGE_SECONDS``, leaves the job pending:
        it is redelivered after the lease, which counts as an attempt, so a job that always fails
        this way ends after ``JOB_MAX_ATTEMPTS``.
        """
        backoff, since = 0.2, time.monotonic()
        while True:
            try:
                # A task per try: a database driver that dies mid-transaction can leave its
                # context (Piccolo's current transaction) behind; the next try starts clean.
                await asyncio.create_task(step())
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                raise
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() - since > MAX_OUTAGE_SECONDS:
                    log.exception("job.error_left_for_redelivery", error=str(exc) or type(exc).__name__)
                    return
                log.warning("job.outage_retry", error=str(exc) or type(exc).__name__, retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _replied(self, job: JobMessage) -> bool:
        return bool(await self.redis.xlen(job.reply_stream))

    async def _reply(self, job: JobMessage, reply: JobReply) -> None:
        """Write the reply (with its expiry) and the Idempotency-Key's copy, atomically; first one stands."""
        keys = [job.reply_stream]
        if job.idempotency_key:
            keys.append(self.keys.idempotency(job.user_id, job.idempotency_key))
        await self._reply_script(keys=keys, args=[encode(reply)[DATA_FIELD], self.reply_ttl])

    async def _ack(self, msg_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, msg_id)
            pipe.xdel(self.keys.jobs_stream, msg_id)  # the stream holds only jobs not yet done
            await pipe.execute()

    async def _dead_letter(self, msg_id: str, fields: dict[bytes, bytes], reason: str,
                           reply: tuple[JobMessage, JobReply] | None = None) -> None:
        log.error("job.dead_letter", msg_id=msg_id, reason=reason)
        if reply:
            await self._reply(*reply)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.dead_letter_stream, {DATA_FIELD: fields.get(DATA_FIELD, b""), b"reason": reason.encode(),
                                                     b"id": msg_id.encode()},
                      maxlen=self.dead_letter_maxlen, approximate=True)
            pipe.xack(self.keys.jobs_stream, self.keys.jobs_group, msg_id)
            pipe.xdel(self.keys.jobs_stream, msg_id)
            await pipe.execute()

    async def _renew_leases(self) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.renew_every)
            ids = [m for m in self.active if m not in self._finishing]
            try:
                if ids:
                    kept = {_id(m) for m in await self._renew_script(
                        keys=[self.keys.jobs_stream], args=[self.keys.jobs_group, self.name, *ids])}
                    for msg_id in ids:
                        task = self.active.get(msg_id)
                        if msg_id not in kept and task is not None and msg_id not in self._finishing:
                            log.warning("job.lease_lost", msg_id=msg_id)
                            task.cancel()
                if time.monotonic() - last_prune > 60:
                    last_prune = time.monotonic()
                    await self._prune_script(keys=[self.keys.jobs_stream],
                                             args=[self.keys.jobs_group, STALE_CONSUMER_MS])
            except (RedisError, OSError) as exc:
                log.warning("worker.lease_renewal_failed", error=str(exc) or type(exc).__name__)


def _salvage_reply(fields: dict[bytes, bytes], keys: Keys) -> tuple[JobMessage, JobReply] | None:
    """For a message that does not decode as a job but names one: a 500 for its waiting client."""
    try:
        data = json.loads(fields.get(DATA_FIELD, b""))
        job_id, user_id = str(data["job_id"]), str(data.get("user_id", ""))
    except (ValueError, KeyError, TypeError):
        return None
    job = JobMessage(job_id=job_id, user_id=user_id, model="", prompt="", source_key="", duration="",
                     reply_stream=keys.reply_stream(job_id), submitted_at=0.0)
    return job, error_reply(job_id, GenerationFailed("the job message could not be read"))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned future's outcome as seen (no 'exception was never retrieved')."""
    if not future.cancelled():
        future.exception()


def _id(msg_id: bytes | str) -> str:
    return msg_id.decode() if isinstance(msg_id, bytes) else msg_id
