"""The worker's webhook events of a job (real database and Redis): ``generation.started`` once
charged, queued again (and kept once) by a delivery that resumes the job after a crash; the
outcome's event per subscription."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.core.settings import Settings
from service.generations.notify import WebhookNotifier
from service.generations.task import GenerationTask
from service.webhooks.queue import WebhookQueue
from tests.conftest import REDIS_URL
from tests.factories import grant
from tests.generations.conftest import CountingStorage, Faults, make_job
from tests.workers.models import SimulatedCrash

URL = "https://hooks.example.com/video"


@pytest.fixture
async def queue(worker_db: Settings) -> AsyncIterator[WebhookQueue]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield WebhookQueue(client, Keys(worker_db.redis_key_prefix), retention_seconds=60)
    await client.aclose()


@pytest.fixture
def notifier(queue: WebhookQueue, storage: CountingStorage) -> WebhookNotifier:
    return WebhookNotifier(queue, storage, download_seconds=60, on_queued=lambda: None)


@pytest.fixture
def told(worker_db: Settings, storage: CountingStorage, models: Any, faults: Faults, notifier: WebhookNotifier):
    return GenerationTask(worker_db, models, storage, fault=faults, on_started=notifier.job_started)


async def events_of(queue: WebhookQueue, job_id: str) -> dict[str, Any]:
    found = await queue.many([f"msg_{job_id}_{e}" for e in ("started", "succeeded", "failed", "cancelled")])
    return {d.event.value: json.loads(d.payload) for d in found}


async def test_started_is_queued_once_charged_and_again_only_once_after_a_crash(
    told: GenerationTask, seeded: Settings, crash_at: Any, queue: WebhookQueue, notifier: WebhookNotifier
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, webhook_url=URL, webhook_events=["generation.started", "generation.succeeded"])
    crash_at("after_debit")  # charged, then the worker dies before anything is queued
    with pytest.raises(SimulatedCrash):
        await told.run(job, 1)
    assert await events_of(queue, job.job_id) == {}
    reply = await told.run(job, 2)  # the next delivery resumes it: started now
    await notifier.job_ended(job, reply)
    await notifier.job_ended(job, reply)  # a redelivery after the outcome: the same event, kept once
    events = await events_of(queue, job.job_id)
    assert set(events) == {"generation.started", "generation.succeeded"} and await queue.due() == 2
    assert events["generation.started"]["data"]["status"] == "running"
    assert events["generation.succeeded"]["data"]["result"]["credits"] == {"used": 750, "balance": 250.0}


async def test_without_a_subscription_by_name_started_is_not_sent(
    told: GenerationTask, seeded: Settings, queue: WebhookQueue, notifier: WebhookNotifier
) -> None:
    await grant("u1", 2000)
    quiet = make_job(seeded, job_id="quiet")
    default = make_job(seeded, job_id="default", webhook_url=URL)
    for job in (quiet, default):
        await notifier.job_ended(job, await told.run(job, 1))
    assert await events_of(queue, "quiet") == {}
    assert set(await events_of(queue, "default")) == {"generation.succeeded"}
