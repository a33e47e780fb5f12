"""Worker fixtures: the task fixtures of ``tests/generations`` and schedulers on the real Redis
under the test's key prefix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.generations.task import GenerationTask
from service.jobs.messages import DATA_FIELD, JobMessage, JobReply, decode_reply, encode
from service.jobs.stream import JobStream
from tests.conftest import REDIS_URL
from tests.generations.conftest import (
    CountingStorage,
    body,
    crash_at,
    faults,
    make_job,
    models,
    seeded,
    storage,
    task,
    worker_db,
)
from workers.scheduler import Scheduler

__all__ = [
    "CountingStorage",
    "body",
    "crash_at",
    "faults",
    "make_job",
    "models",
    "seeded",
    "storage",
    "task",
    "worker_db",
]


class Redis:
    """The test's Redis client and keys, with helpers to queue jobs the way the API does."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def queue(self, job: JobMessage) -> str:
        """Queue ``job`` on its model's stream, as the API's submit does."""
        await self.ensure_group(job.model)
        return (await self.client.xadd(self.keys.queue(job.model), {DATA_FIELD: encode(job)})).decode()

    async def ensure_group(self, model: str = "scripted") -> None:
        await self.client.sadd(self.keys.queues, model)
        try:
            await self.client.xgroup_create(self.keys.queue(model), self.keys.jobs_group, id="0", mkstream=True)
        except aioredis.ResponseError:
            pass

    async def streams(self) -> list[str]:
        """Every model's jobs stream made so far."""
        return sorted(self.keys.queue(m.decode()) for m in await self.client.smembers(self.keys.queues))

    async def pending(self) -> list[dict[str, Any]]:
        """The entries delivered and not acknowledged, on every model's stream."""
        found = []
        for stream in await self.streams():
            found += await self.client.xpending_range(stream, self.keys.jobs_group, min="-", max="+", count=100)
        return found

    async def reply(self, job: JobMessage) -> JobReply | None:
        raw = await self.client.get(self.keys.reply(job.job_id))
        return decode_reply(raw) if raw else None


@pytest.fixture
async def rds(redis_prefix: str) -> AsyncIterator[Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield Redis(client, Keys(redis_prefix))
    await client.aclose()


def make_stream(prefix: str, client: aioredis.Redis) -> JobStream:
    return JobStream(client, Keys(prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)


class Schedulers:
    """Schedulers on the real Redis under the test's prefix; every one is stopped afterwards."""

    def __init__(self, task: GenerationTask, prefix: str) -> None:
        self.task, self.prefix = task, prefix
        self.made: list[tuple[Scheduler, list[aioredis.Redis]]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def make(
        self,
        name: str = "a",
        *,
        lease_seconds: float = 5.0,
        concurrency: int = 2,
        task: Any = None,
        limits: dict[str, int] | None = None,
    ) -> Scheduler:
        client, reader = make_redis(REDIS_URL, max_connections=16), make_dedicated_redis(REDIS_URL)
        scheduler = Scheduler(
            make_stream(self.prefix, client),
            task or self.task,
            reader,
            name=name,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            limits=limits,
        )
        self.made.append((scheduler, [client, reader]))
        return scheduler

    def start(self, scheduler: Scheduler) -> asyncio.Task[None]:
        running = asyncio.create_task(scheduler.run())
        self.tasks.append(running)
        return running

    def run(self, name: str = "a", **kwargs: Any) -> Scheduler:
        scheduler = self.make(name, **kwargs)
        self.start(scheduler)
        return scheduler

    async def close(self) -> None:
        for scheduler, _ in self.made:
            scheduler.stop()
        for running in self.tasks:  # not waiting for a blocked XREADGROUP to time out
            running.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for scheduler, clients in self.made:
            await scheduler.shutdown(0)
            for client in clients:
                await client.aclose()


@pytest.fixture
async def schedulers(task: GenerationTask, redis_prefix: str) -> AsyncIterator[Schedulers]:
    made = Schedulers(task, redis_prefix)
    yield made
    await made.close()


__all__ += ["Redis", "Schedulers", "body", "decode_reply", "make_stream", "rds", "schedulers"]
