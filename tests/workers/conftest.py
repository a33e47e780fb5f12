"""Worker fixtures: the database opened in the test's loop, a counting local storage, the scripted
model's registry, crash points that raise instead of killing the test process, and consumers on
the real Redis under the test's key prefix."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from service.core import db
from service.core.keys import Keys
from service.core.redis import make_redis
from service.core.settings import Settings
from service.jobs.messages import JobMessage, encode
from service.storage.local import LocalStorage
from tests.conftest import REDIS_URL
from tests.factories import seed_image
from tests.workers.models import ScriptedModel, SimulatedCrash, registry
from workers import pipeline as pipeline_module
from workers.consumer import Consumer
from workers.pipeline import Pipeline


class CountingStorage(LocalStorage):
    """LocalStorage that counts uploads per key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, signing_secret="test", base_url="http://127.0.0.1:1")
        self.uploads: Counter[str] = Counter()

    async def put_file(self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]) -> None:
        self.uploads[key] += 1
        await super().put_file(key, path, content_type=content_type, metadata=metadata)


@pytest.fixture
async def worker_db(settings: Settings) -> AsyncIterator[Settings]:
    """The test database (SQLite or PostgreSQL, migrated and empty), opened for this test."""
    await db.connect(settings.database_url)
    try:
        yield settings
    finally:
        await db.disconnect()


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[CountingStorage]:
    store = CountingStorage(Path(settings.storage_url.removeprefix("file://")))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def models() -> Any:
    ScriptedModel.reset()
    yield registry()
    ScriptedModel.reset()


@pytest.fixture
def pipeline(worker_db: Settings, storage: CountingStorage, models: Any) -> Pipeline:
    return Pipeline(worker_db, models, storage)


@pytest.fixture
def crash_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``crash_at("after_upload")``: the next job reaching that point raises ``SimulatedCrash``."""
    armed: list[str] = []

    def fake(point: str, job_id: str) -> None:
        if point in armed:
            armed.remove(point)
            raise SimulatedCrash(point)

    monkeypatch.setattr(pipeline_module, "crash_point", fake)
    import workers.consumer as consumer_module

    monkeypatch.setattr(consumer_module, "crash_point", fake)
    return armed.append


def make_job(settings: Settings, *, job_id: str = "job-1", user_id: str = "u1", model: str = "scripted",
             options: dict[str, Any] | None = None, idempotency_key: str | None = None, **fields: Any) -> JobMessage:
    keys = Keys(settings.redis_key_prefix)
    values: dict[str, Any] = dict(
        job_id=job_id, user_id=user_id, model=model, prompt="A calm sea", source_key=f"images/{user_id}/source-image.png",
        duration="5s", options=options or {}, reply_stream=keys.reply_stream(job_id), submitted_at=0.0,
        idempotency_key=idempotency_key,
    )
    values.update(fields)
    return JobMessage(**values)


@pytest.fixture
async def seeded(worker_db: Settings) -> Settings:
    await seed_image(worker_db)
    return worker_db


class Redis:
    """The test's Redis client and keys, with helpers to queue jobs the way the API does."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def queue(self, job: JobMessage) -> str:
        await self.ensure_group()
        return (await self.client.xadd(self.keys.jobs_stream, encode(job))).decode()

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.keys.jobs_stream, self.keys.jobs_group, id="0", mkstream=True)
        except aioredis.ResponseError:
            pass

    async def pending(self) -> list[dict[str, Any]]:
        return await self.client.xpending_range(self.keys.jobs_stream, self.keys.jobs_group, min="-", max="+", count=100)


@pytest.fixture
async def rds(redis_prefix: str) -> AsyncIterator[Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield Redis(client, Keys(redis_prefix))
    await client.aclose()


class Consumers:
    """Consumers on the real Redis under the test's prefix; every one is stopped afterwards."""

    def __init__(self, pipeline: Pipeline, prefix: str) -> None:
        self.pipeline, self.prefix = pipeline, prefix
        self.made: list[tuple[Consumer, aioredis.Redis]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def make(self, name: str = "a", *, lease_seconds: float = 5.0, concurrency: int = 2, **kwargs: Any) -> Consumer:
        client = make_redis(REDIS_URL, max_connections=16)
        consumer = Consumer(client, Keys(self.prefix), kwargs.pop("pipeline", self.pipeline), concurrency=concurrency,
                            lease_seconds=lease_seconds, reply_ttl=60, name=name, **kwargs)
        self.made.append((consumer, client))
        return consumer

    def start(self, consumer: Consumer) -> asyncio.Task[None]:
        task = asyncio.create_task(consumer.run())
        self.tasks.append(task)
        return task

    def run(self, name: str = "a", **kwargs: Any) -> Consumer:
        consumer = self.make(name, **kwargs)
        self.start(consumer)
        return consumer

    async def close(self) -> None:
        for consumer, _ in self.made:
            consumer.stop()
        for task in self.tasks:  # not waiting for a blocked XREADGROUP to time out
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for consumer, client in self.made:
            await consumer.shutdown(0)
            await client.aclose()


@pytest.fixture
async def consumers(pipeline: Pipeline, redis_prefix: str) -> AsyncIterator[Consumers]:
    made = Consumers(pipeline, redis_prefix)
    yield made
    await made.close()
