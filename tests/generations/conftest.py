"""Fixtures for the generation's task: the database opened in the test's loop, a counting local
storage, the scripted model's registry, crash points that raise instead of killing the test
process, and job messages as the API queues them; and the jobs fixtures' whole stack (``jobs_api``)
for the endpoint tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.core import db
from service.core.keys import Keys
from service.core.settings import Settings
from service.generations.task import GenerationTask
from service.jobs.messages import JobMessage, JobReply
from service.storage.local import LocalStorage
from tests.factories import seed_image
from tests.jobs.conftest import jobs_api, stack_settings  # noqa: F401  (the whole stack, for the endpoint tests)
from tests.workers.models import ScriptedModel, SimulatedCrash, registry


class CountingStorage(LocalStorage):
    """LocalStorage that counts uploads per key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, signing_secret="test", base_url="http://127.0.0.1:1")
        self.uploads: Counter[str] = Counter()

    async def put_file(self, key: str, path: Path, **options: Any) -> None:
        self.uploads[key] += 1
        await super().put_file(key, path, **options)


class Faults:
    """Crash points that raise ``SimulatedCrash`` (the worker "dies" there) once each time armed."""

    def __init__(self) -> None:
        self.armed: list[str] = []

    def __call__(self, point: str, job_id: str) -> None:
        if point in self.armed:
            self.armed.remove(point)
            raise SimulatedCrash(point)


def body(reply: JobReply) -> Any:
    """A reply's JSON body as Python values."""
    return msgspec.json.decode(reply.body)


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
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    hooks = Faults()
    import workers.handling

    monkeypatch.setattr(workers.handling, "crash_point", hooks)
    return hooks


@pytest.fixture
def crash_at(faults: Faults) -> Callable[[str], None]:
    """``crash_at("after_upload")``: the next job reaching that point raises ``SimulatedCrash``."""
    return faults.armed.append


@pytest.fixture
def task(worker_db: Settings, storage: CountingStorage, models: Any, faults: Faults) -> GenerationTask:
    return GenerationTask(worker_db, models, storage, fault=faults)


def make_job(
    settings: Settings,
    *,
    job_id: str = "job-1",
    user_id: str = "u1",
    model: str = "scripted",
    options: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    **fields: Any,
) -> JobMessage:
    values: dict[str, Any] = dict(
        job_id=job_id,
        user_id=user_id,
        model=model,
        prompt="A calm sea",
        source_key=f"images/{user_id}/source-image.png",
        duration="5s",
        options=options or {},
        inbox=None,
        submitted_at=0.0,
        idempotency_key=idempotency_key,
    )
    values.update(fields)
    return JobMessage(**values)


def keys_of(settings: Settings) -> Keys:
    return Keys(settings.redis_key_prefix)


@pytest.fixture
async def seeded(worker_db: Settings) -> Settings:
    await seed_image(worker_db)
    return worker_db
