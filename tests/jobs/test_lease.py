"""Leases: a fresh one is checked without a round trip, a stale one is renewed on the spot, and a
job another worker took is reported (and refused) however it is noticed."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.jobs.lease import LeaseLost, Leases
from service.jobs.messages import EntryRef, JobMessage
from service.jobs.stream import JobStream
from tests.conftest import REDIS_URL


class CountingStream(JobStream):
    renewals = 0

    async def renew(self, consumer: str, refs) -> set[EntryRef]:  # type: ignore[no-untyped-def]
        self.renewals += 1
        return await super().renew(consumer, refs)


@pytest.fixture
async def stream(redis_prefix: str) -> CountingStream:
    client = aioredis.Redis.from_url(REDIS_URL)
    made = CountingStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    await made.ensure_groups(["m"])
    yield made
    await client.aclose()


async def claimed(stream: JobStream, n: int = 1) -> list[EntryRef]:
    for i in range(n):
        await stream.submit(
            JobMessage(
                job_id=f"j{i}", user_id="u1", model="m", prompt="p", source_key="k", duration="5s", submitted_at=0.0
            )
        )
    return [e.ref for e in await stream.claim(stream.redis, "w1", {"m": n}, 100)]


async def test_a_fresh_lease_is_checked_locally_and_a_stale_one_renewed(stream: CountingStream) -> None:
    [message_id] = await claimed(stream)
    leases = Leases(stream, "w1", 60, on_lost=lambda m: None)
    leases.hold(message_id, time.monotonic())
    await leases.check(message_id)
    assert stream.renewals == 0
    leases.hold(message_id, time.monotonic() - 31)  # last confirmed more than half a lease ago
    await leases.check(message_id)
    assert stream.renewals == 1
    await leases.check(message_id)  # renewed just now: fresh again
    assert stream.renewals == 1


async def test_a_taken_job_is_refused_by_the_check_and_reported_by_the_renewal(stream: CountingStream) -> None:
    ids = await claimed(stream, 2)
    lost: list[EntryRef] = []
    leases = Leases(stream, "w1", 60, on_lost=lost.append)
    for message_id in ids:
        leases.hold(message_id, time.monotonic() - 59)
    await stream.redis.xclaim(ids[0].stream, stream.keys.jobs_group, "thief", 0, [ids[0].message_id], justid=True)
    with pytest.raises(LeaseLost):
        await leases.check(ids[0])
    await leases.renew_once()  # one round trip for every held job
    assert lost == [ids[0]] and leases.held == [ids[1]] and stream.renewals == 2
