"""``JobWatchers`` on the real Redis: nothing is read while nobody follows a job, and a follower
still gets every event written after it began, even one written while the idle reader refreshed
its position; ``stop`` ends the reader even when a cancellation is swallowed inside a Redis call
(redis-py turns it into its own error while a connection is released or reconnected), which hung
the API's shutdown in a test run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.core.keys import Keys
from service.core.redis import make_dedicated_redis
from service.jobs import watchers as watchers_module
from service.jobs.messages import JobEvent, encode
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
    following = watchers.watch("j1")  # the reader reads only while a stream follows a job
    following.__enter__()
    await asyncio.wait_for(stream.entered.wait(), 30)  # safety net only
    # One cancel() was swallowed and the loop read on (and blocked) again: stop must cancel again.
    await asyncio.wait_for(watchers.stop(), 30)
    assert stream.swallowed == 1
    assert task is not None and task.done()


class CountingStream(JobStream):
    """Counts event reads; ``during_tail`` runs after the next position refresh reached Redis."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reads = 0
        self.during_tail: list[object] = []

    async def read_events(self, reader: aioredis.Redis, after: str, block_ms: int) -> tuple[str, list[JobEvent]]:
        self.reads += 1
        return await super().read_events(reader, after, block_ms)

    async def events_tail(self) -> str:
        if self.during_tail:
            await self.during_tail.pop()  # type: ignore[misc]
        return await super().events_tail()


async def test_nothing_is_read_while_nobody_follows_and_a_follower_misses_nothing(
    client: aioredis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watchers_module, "IDLE_REFRESH", 0.02)
    keys = Keys(redis_prefix)
    stream = CountingStream(client, keys, reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    watchers = JobWatchers(stream, make_dedicated_redis(REDIS_URL, name=f"{redis_prefix}:events"))

    async def event(job_id: str) -> None:
        await client.xadd(keys.events_stream, {"0": encode(JobEvent(job_id=job_id, status="running"))})

    await watchers.start()
    try:
        for _ in range(5):
            await event("nobody-follows")
            await asyncio.sleep(0.05)  # a few refreshes of the position, whatever the machine's speed
        assert stream.reads == 0
        following = watchers.watch("j1")

        async def begin_following_then_event() -> None:
            # A stream begins following, and the job changes, while the reader asks for the tail:
            # the tail it gets is past the change, so it must resume from its older position.
            queue = following.__enter__()
            await event("j1")
            got.append(queue)

        got: list[asyncio.Queue[JobEvent]] = []
        stream.during_tail.append(begin_following_then_event())
        while not got:
            await asyncio.sleep(0.01)
        received = await asyncio.wait_for(got[0].get(), 30)  # safety net only
        assert received.job_id == "j1" and stream.reads >= 1
        following.__exit__(None, None, None)
    finally:
        await asyncio.wait_for(watchers.stop(), 30)
