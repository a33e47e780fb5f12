"""The API side of the jobs protocol: enqueue a job, await its reply, look a job up."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.errors import ServiceUnavailable
from service.core.keys import Keys
from service.jobs.messages import JobMessage, JobReply, decode_reply, encode
from service.jobs.replies import ReplyHub


class JobMeta(msgspec.Struct):
    """What Redis knows of a job before (or without) a database record."""

    user_id: str
    submitted_at: float
    model: str


class JobQueue:
    def __init__(self, redis: Redis, hub: ReplyHub, keys: Keys, *, maxlen: int, meta_ttl: int) -> None:
        self.redis, self.hub, self.keys = redis, hub, keys
        self._maxlen, self._meta_ttl = maxlen, meta_ttl

    async def submit(self, job: JobMessage) -> None:
        """Queue ``job`` and record its owner, atomically; 503 when Redis is unreachable."""
        meta = msgspec.json.encode(JobMeta(job.user_id, job.submitted_at, job.model))
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.keys.job_meta(job.job_id), meta, ex=self._meta_ttl)
                pipe.xadd(self.keys.jobs_stream, encode(job), maxlen=self._maxlen, approximate=True)
                await pipe.execute()
        except RedisError as exc:
            raise ServiceUnavailable("Service temporarily unavailable: job queue unreachable") from exc

    async def wait(self, job: JobMessage, timeout: float) -> JobReply | None:
        """The job's reply, or None when it takes longer than ``timeout`` (the job goes on)."""
        return await self.hub.wait(job.reply_stream, timeout)

    async def reply(self, job_id: str) -> JobReply | None:
        """The reply already written for ``job_id``, if any."""
        entries = await self.redis.xrange(self.keys.reply_stream(job_id), count=1)
        return decode_reply(entries[0][1]) if entries else None

    async def meta(self, job_id: str) -> JobMeta | None:
        raw = await self.redis.get(self.keys.job_meta(job_id))
        return msgspec.json.decode(raw, type=JobMeta) if raw else None
