"""``ReplyInbox.stop`` on the real Redis: it ends its tasks even when a cancellation is swallowed
inside a Redis call (as redis-py does while a connection is released or reconnected)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.core.redis import make_dedicated_redis
from service.jobs import inbox as inbox_module
from service.jobs.inbox import ReplyInbox
from service.jobs.stream import JobStream
from tests.conftest import REDIS_URL


class SwallowingStream(JobStream):
    """The first ``backlog`` call blocks, and a cancellation that reaches it is swallowed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.entered = asyncio.Event()
        self.swallowed = 0

    async def backlog(self) -> int:
        if self.swallowed:
            return await super().backlog()
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.swallowed += 1
        return 0


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    made = aioredis.Redis.from_url(REDIS_URL)
    yield made
    await made.aclose()


async def test_stop_ends_tasks_whose_cancellation_was_swallowed(
    client: aioredis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "BACKLOG_EVERY", 0.01)
    stream = SwallowingStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    inbox = ReplyInbox(stream, make_dedicated_redis(REDIS_URL, name=f"{redis_prefix}:inbox"))
    await inbox.start()
    tasks = list(inbox._tasks)
    waiter = inbox.expect("j1")
    await asyncio.wait_for(stream.entered.wait(), 30)  # safety net only
    # Before the fix this awaited the swallowed task forever; the bound is a safety net.
    await asyncio.wait_for(inbox.stop(), 30)
    assert stream.swallowed == 1
    assert all(task.done() for task in tasks)
    assert waiter.result() is None and inbox.closing


async def test_stop_gives_up_after_its_timeout_on_a_task_that_never_ends(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    stream = JobStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    inbox = ReplyInbox(stream, make_dedicated_redis(REDIS_URL, name=f"{redis_prefix}:inbox"))
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    inbox._tasks = [task]
    await asyncio.wait_for(inbox.stop(timeout=0.3), 30)
    assert not task.done() and inbox.closing
    release.set()
    await task
