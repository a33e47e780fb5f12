"""1,000 requests waiting in one API process share a fixed handful of Redis connections, and
each gets its own job's reply through the process's inbox."""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.jobs.messages import DATA_FIELD, JobReply, decode_job, encode
from tests.conftest import REDIS_URL
from tests.factories import image_request, token_for

WAITING = 1000


async def connections_named(client: aioredis.Redis, prefix: str) -> int:
    return sum(1 for c in await client.client_list() if c.get("name", "").startswith(prefix))


async def backlog(client: aioredis.Redis, keys: Keys) -> int:
    """Entries on every model's jobs stream."""
    return sum([await client.xlen(keys.queue(m.decode())) for m in await client.smembers(keys.queues)])


async def answer_all(client: aioredis.Redis, keys: Keys, expected: int) -> int:
    """Play the worker: add a reply for every queued job to the inbox it names."""
    answered, after = 0, {}  # the last entry answered, per model's stream
    while answered < expected:
        for model in await client.smembers(keys.queues):
            stream = keys.queue(model.decode())
            last = after.get(stream)
            entries = await client.xrange(stream, min=f"({last}" if last else "-", count=expected)
            async with client.pipeline(transaction=False) as pipe:
                for msg_id, fields in entries:
                    job = decode_job(fields[DATA_FIELD])
                    body = {"statusCode": 400, "message": f"done {job.job_id}", "error": "Bad Request"}
                    reply = JobReply(job_id=job.job_id, status_code=400, body=msgspec.Raw(msgspec.json.encode(body)))
                    pipe.xadd(job.inbox, {DATA_FIELD: encode(reply)})
                    after[stream] = msg_id.decode()
                    answered += 1
                await pipe.execute()
        await asyncio.sleep(0.05)
    return answered


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_thousand_waiting_requests_use_a_few_connections(settings, redis_prefix) -> None:
    from msgspec.structs import replace

    from service.embedded import embedded_stack
    from tests.factories import TestModels

    # Nobody waits on the clock: the requests may wait as long as the test takes to answer them.
    settings = replace(settings, redis_max_connections=8, sync_wait_seconds=3600)
    async with embedded_stack(settings, registry=TestModels.registry(), workers=0) as stack:
        inbox = stack.server.config.app.state.inbox
        token = token_for(settings, "u1")
        # aiohttp: httpx's connection pool is O(connections) per request, and 1,000 of them starve the loop
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(base_url=stack.url, connector=connector) as http,
            aioredis.Redis.from_url(REDIS_URL) as control,
        ):

            async def post() -> tuple[int, dict]:
                async with http.post(
                    "/video-gen/image-to-video", json=image_request(), headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    return response.status, await response.json()

            requests = [asyncio.create_task(post()) for _ in range(WAITING)]
            try:
                while inbox.waiting < WAITING:
                    done = [r for r in requests if r.done()]
                    assert not done, f"a request was answered before its job: {done[0].result()}"
                    await asyncio.sleep(0.05)
                held = await connections_named(control, f"{redis_prefix}:api")
                # The pool (8) plus the inbox reader and the job-events reader, however many requests wait.
                assert held <= settings.redis_max_connections + 2, f"{held} connections for {WAITING} waiting"
                await answer_all(control, Keys(redis_prefix), WAITING)
                responses = await asyncio.gather(*requests)
            finally:  # a failed check must fail the test, not leave 1,000 requests holding the stack open
                inbox.release_all()
                for request in requests:
                    request.cancel()
    assert [status for status, _ in responses] == [400] * WAITING
    messages = {body["message"] for _, body in responses}
    assert len(messages) == WAITING  # each request got its own job's reply


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_past_max_waiting_requests_a_request_is_refused_at_once_with_the_spec_503(settings, redis_prefix) -> None:
    from msgspec.structs import replace

    from service.embedded import embedded_stack
    from tests.factories import TestModels

    settings = replace(settings, max_waiting_requests=3, sync_wait_seconds=3600)
    async with embedded_stack(settings, registry=TestModels.registry(), workers=0) as stack:
        inbox = stack.server.config.app.state.inbox
        assert inbox.capacity == 3
        token = token_for(settings, "u1")
        async with (
            aiohttp.ClientSession(base_url=stack.url) as http,
            aioredis.Redis.from_url(REDIS_URL) as control,
        ):

            async def post(prefer: str | None = None) -> tuple[int, dict]:
                headers = {"Authorization": f"Bearer {token}", **({"Prefer": prefer} if prefer else {})}
                async with http.post("/video-gen/image-to-video", json=image_request(), headers=headers) as response:
                    return response.status, await response.json()

            waiting = [asyncio.create_task(post()) for _ in range(3)]
            while inbox.waiting < 3:
                done = [r for r in waiting if r.done()]
                assert not done, f"a request was answered before its job: {done[0].result()}"
                await asyncio.sleep(0.05)
            status, body = await asyncio.wait_for(post(), 20)
            assert (status, body) == (
                503,
                {
                    "statusCode": 503,
                    "message": "Service temporarily unavailable: too many requests are waiting on this server, "
                    "try again later",
                    "error": "Service Unavailable",
                },
            )
            assert await backlog(control, Keys(redis_prefix)) == 3  # the refused one queued nothing
            await answer_all(control, Keys(redis_prefix), 3)
            assert [s for s, _ in await asyncio.wait_for(asyncio.gather(*waiting), 20)] == [400] * 3
