"""Fixtures for the webhook queue and dispatcher: real Redis under the test's prefix, a loopback
receiver that verifies signatures with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.core.settings import parse_webhook_secret
from service.webhooks.messages import WebhookDelivery, WebhookEvent, delivery_id
from service.webhooks.queue import WebhookQueue
from service.webhooks.sender import Sender
from service.webhooks.service import WebhookDispatcher
from tests.conftest import REDIS_URL
from tests.fakes.webhook_receiver import Receiver
from tests.jobs.conftest import stack_settings  # noqa: F401  (the jobs fixture, for the whole stack)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def make_delivery(url: str, *, job_id: str = "job1", event: WebhookEvent = WebhookEvent.SUCCEEDED) -> WebhookDelivery:
    return WebhookDelivery(
        id=delivery_id(job_id, event),
        job_id=job_id,
        user_id="u1",
        event=event,
        url=url,
        payload=json.dumps({"type": event.value, "data": {"jobId": job_id}}, separators=(",", ":")),
        created_at=time.time(),
    )


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
async def queue(redis_prefix: str) -> AsyncIterator[WebhookQueue]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield WebhookQueue(client, Keys(redis_prefix), retention_seconds=600)
    await client.aclose()


@pytest.fixture
async def receivers(secret: str) -> AsyncIterator[Callable[..., Any]]:
    """``await receivers(answers=[500, 500], then=204)``: a started receiver (stopped afterwards)."""
    made: list[Receiver] = []

    async def start(**kwargs: Any) -> tuple[Receiver, str]:
        receiver = Receiver(kwargs.pop("secret", secret), **kwargs)
        made.append(receiver)
        return receiver, await receiver.start()

    yield start
    for receiver in made:
        await receiver.stop()


@pytest.fixture
async def dispatchers(queue: WebhookQueue, secret: str) -> AsyncIterator[Callable[..., Any]]:
    """``dispatchers(delays=[...], timeout=..., keys=[...])``: a running dispatcher (stopped afterwards)."""
    running: list[tuple[WebhookDispatcher, asyncio.Task[None]]] = []

    def start(**kwargs: Any) -> WebhookDispatcher:
        sender = Sender(
            kwargs.pop("keys", [parse_webhook_secret(secret, "secret")]),
            timeout=kwargs.pop("timeout", 5.0),
            allow_private=kwargs.pop("allow_private", True),
        )
        dispatcher = WebhookDispatcher(
            queue,
            sender,
            delays=kwargs.pop("delays", [0.05, 0.05, 0.05]),
            concurrency=kwargs.pop("concurrency", 8),
            poll_seconds=kwargs.pop("poll_seconds", 0.05),
            per_host=kwargs.pop("per_host", None),
        )
        running.append((dispatcher, asyncio.create_task(dispatcher.run())))
        return dispatcher

    yield start
    for dispatcher, task in running:
        await dispatcher.stop(0)
        await task
        await dispatcher.sender.close()
