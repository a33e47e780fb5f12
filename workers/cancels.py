"""Following the cancels stream in a worker: a cancelled job this process runs has its model run
stopped (``GenerationTask.cancel``); its record already says CANCELLED (``service.generations.cancel``)."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.redis import BLOCK_MS
from service.generations.task import GenerationTask
from service.jobs.stream import JobStream

log = structlog.get_logger(__name__)


async def follow_cancels(stream: JobStream, reader: Redis, task: GenerationTask) -> None:
    """Stop the model run of every cancelled job this process runs, as the notices come, from
    the stream's end at the first read; ``reader`` is a connection of its own (it blocks)."""
    after: str | None = None
    while True:
        try:
            if after is None:
                after = await stream.cancels_tail()
            after, job_ids = await stream.read_cancels(reader, after, BLOCK_MS)
        except (RedisError, OSError) as exc:
            log.warning("worker.cancels_unavailable", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1.0)
            continue
        for job_id in job_ids:
            if task.cancel(job_id):
                log.info("job.cancel_requested", job_id=job_id)
