"""``JobWatchers.stop`` on the real Redis: it ends its reader even when a cancellation is
swallowed inside a Redis call (redis-py turns it into its own error while a connection is released
or reconnected), which hung the API's shutdown in a test run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.core.keys import Keys
from service.core.redis import make_dedicated_redis
from service.jobs.messages import JobEvent
from service.jobs.stream import JobStream
from service.jobs.watchers import JobWatchers
from tests.conftest import REDIS_URL


class SwallowingStream(JobStream):
    """The first ``read_events`` blocks, and a cancellation that reaches it becomes a Redis error."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.entered = asyncio.Event()
        self.swallowed = 0

    async def read_events(self, reader: aioredis.Redis, after: str, block_ms: int) -> tuple[str, list[JobEvent]]:
        if self.swallowed:
            return await super().read_events(reader, after, block_ms)
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.swallowed += 1
            raise RedisConnectionError("Connection closed by server.") from None
        return after, []


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    made = aioredis.Redis.from_url(REDIS_URL)
    yield made
    await made.aclose()


async def test_stop_ends_a_reader_whose_cancellation_was_swallowed(client: aioredis.Redis, redis_prefix: str) -> None:
    stream = SwallowingStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    watchers = JobWatchers(stream, make_dedicated_redis(REDIS_URL, name=f"{redis_prefix}:events"))
    await watchers.start()
    task = watchers._task
    await asyncio.wait_for(stream.entered.wait(), 30)  # safety net only
    # One cancel() was swallowed and the loop read on (and blocked) again: stop must cancel again.
    await asyncio.wait_for(watchers.stop(), 30)
    assert stream.swallowed == 1
    assert task is not None and task.done()
