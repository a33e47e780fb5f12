"""The API side of the jobs protocol: enqueue a job, await its reply, look a job up.

Queueing is one Lua script, so these happen together or not at all: the Idempotency-Key check
(an earlier request's job is returned instead), the backlog check (503 when ``JOBS_STREAM_MAXLEN``
jobs are already waiting or running), the owner record (``Keys.job_meta``), the ``XADD`` and the
key's binding. The jobs stream is never trimmed by length: workers delete each entry when they
acknowledge it, so its length is the backlog, and a length cap could only ever drop accepted jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.errors import QUEUE_UNREACHABLE, ServiceUnavailable
from service.core.keys import Keys
from service.jobs import idempotency
from service.jobs.idempotency import IdempotencyRecord
from service.jobs.messages import DATA_FIELD, JobMessage, JobReply, decode_reply, encode
from service.jobs.replies import ReplyHub

log = structlog.get_logger(__name__)

SHUTTING_DOWN = "Service temporarily unavailable: this server is shutting down"
QUEUE_FULL = "Service temporarily unavailable: too many jobs are waiting, try again later"

# KEYS: jobs stream, job meta[, idempotency hash]
# ARGV: job data, meta, meta ttl, max backlog, job id, body hash, created at, idempotency ttl
_SUBMIT = """
local idem = #KEYS >= 3
if idem then
  local existing = redis.call('HGETALL', KEYS[3])
  if #existing > 0 then return {'existing', existing} end
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {'full'} end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('XADD', KEYS[1], '*', '@DATA', ARGV[1])
if idem then
  redis.call('HSET', KEYS[3], '@JOB_ID', ARGV[5], '@BODY_HASH', ARGV[6], '@CREATED_AT', ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return {'queued'}
""".replace("@DATA", DATA_FIELD.decode()).replace("@JOB_ID", idempotency.JOB_ID_FIELD).replace(
    "@BODY_HASH", idempotency.BODY_HASH_FIELD).replace("@CREATED_AT", idempotency.CREATED_AT_FIELD)


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
    """The job that answers this request: the one just queued, or an earlier one with the same key."""

    job_id: str
    reply_stream: str
    queued: bool
    earlier: IdempotencyRecord | None = None


class JobQueue:
    def __init__(self, redis: Redis, hub: ReplyHub, keys: Keys, *, maxlen: int, meta_ttl: int,
                 idempotency_ttl: int = 86_400) -> None:
        self.redis, self.hub, self.keys = redis, hub, keys
        self._maxlen, self._meta_ttl, self._idem_ttl = maxlen, meta_ttl, idempotency_ttl
        self._submit_script = redis.register_script(_SUBMIT)
        self.draining = False

    def begin_shutdown(self) -> None:
        """Refuse new jobs (503) and release every waiting request (each answers 202 with its job id)."""
        if not self.draining:
            log.info("api.draining", waiting=self.hub.waiting)
        self.draining = True
        self.hub.release_all()

    async def lookup(self, user_id: str, key: str) -> IdempotencyRecord | None:
        """The job an Idempotency-Key is bound to, if any; 503 when Redis is unreachable."""
        try:
            return idempotency.parse(await self.redis.hgetall(self.keys.idempotency(user_id, key)))
        except RedisError as exc:
            raise ServiceUnavailable(QUEUE_UNREACHABLE) from exc

    async def submit(self, job: JobMessage, idem: IdempotentRequest | None = None) -> Submitted:
        """Queue ``job`` with its owner record (and bind ``idem``), atomically.

        Returns the earlier job instead when ``idem``'s key is already bound (the caller compares
        the body hashes). 503 when Redis is unreachable or the backlog is full.
        """
        if self.draining:
            raise ServiceUnavailable(SHUTTING_DOWN)
        meta = msgspec.json.encode(JobMeta(job.user_id, job.submitted_at, job.model))
        keys = [self.keys.jobs_stream, self.keys.job_meta(job.job_id)]
        args: list[Any] = [encode(job)[DATA_FIELD], meta, self._meta_ttl, self._maxlen]
        if idem is not None:
            keys.append(self.keys.idempotency(job.user_id, idem.key))
            args += [job.job_id, idem.body_hash, repr(time.time()), self._idem_ttl]
        try:
            # The pool retries after a connection error (service/core/redis.py). The job id is fixed, so
            # even a duplicate entry (a first try that ran but whose answer was lost) is charged once and
            # answered once: workers key the debit, the record and the reply on the job id, not the entry.
            result = await self._submit_script(keys=keys, args=args)
        except RedisError as exc:
            raise ServiceUnavailable(QUEUE_UNREACHABLE) from exc
        status = result[0].decode() if isinstance(result[0], bytes) else result[0]
        if status == "full":
            raise ServiceUnavailable(QUEUE_FULL)
        if status == "existing":
            earlier = idempotency.parse(result[1])
            assert earlier is not None
            return Submitted(earlier.job_id, self.keys.reply_stream(earlier.job_id), queued=False, earlier=earlier)
        return Submitted(job.job_id, job.reply_stream, queued=True)

    async def wait(self, reply_stream: str, timeout: float) -> JobReply | None:
        """The job's reply, or None when it takes longer than ``timeout`` (the job goes on)."""
        if self.draining:
            return None
        return await self.hub.wait(reply_stream, timeout)

    async def reply(self, job_id: str) -> JobReply | None:
        """The reply already written for ``job_id``, if any."""
        entries = await self.redis.xrange(self.keys.reply_stream(job_id), count=1)
        return decode_reply(entries[0][1]) if entries else None

    async def meta(self, job_id: str) -> JobMeta | None:
        raw = await self.redis.get(self.keys.job_meta(job_id))
        return msgspec.json.decode(raw, type=JobMeta) if raw else None
