"""``Scheduler.shutdown`` ends its background loops even when a cancellation is swallowed inside a
Redis call (on Python 3.11 ``asyncio.wait_for``, which redis-py writes every command through, returns
the command's result instead when both land in the same loop round). One ``cancel()`` and an
unbounded wait left the lease renewal and the cancels follower running: an embedded stack's
teardown hung on it."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.generations.task import GenerationTask
from service.jobs.stream import JobStream
from tests.conftest import REDIS_URL
from workers.scheduler import Scheduler

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class SwallowingStream(JobStream):
    """The first ``read_cancels`` blocks, and a cancellation that reaches it is swallowed: the call
    returns as if it had read nothing, and the loop reads on."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.entered = asyncio.Event()
        self.swallowed = 0

    async def read_cancels(self, reader: aioredis.Redis, after: str, block_ms: int) -> tuple[str, list[str]]:
        if self.swallowed:
            return await super().read_cancels(reader, after, block_ms)
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.swallowed += 1
        return after, []


async def test_shutdown_ends_a_loop_whose_cancellation_was_swallowed(task: GenerationTask, redis_prefix: str) -> None:
    client = make_redis(REDIS_URL, max_connections=8)
    readers = [make_dedicated_redis(REDIS_URL), make_dedicated_redis(REDIS_URL)]
    stream = SwallowingStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    scheduler = Scheduler(stream, task, readers[0], name="a", concurrency=1, lease_seconds=5, cancel_reader=readers[1])
    try:
        runner = asyncio.create_task(scheduler.run())
        await asyncio.wait_for(stream.entered.wait(), 30)  # safety net only
        upkeep = list(scheduler._upkeep)
        scheduler.stop()
        await runner
        # Before the fix this awaited the cancels follower for ever; the bound is a safety net.
        await asyncio.wait_for(scheduler.shutdown(0), 30)
        assert stream.swallowed == 1
        assert all(t.done() for t in upkeep)
    finally:
        for made in (client, *readers):
            await made.aclose()
