"""1,000 requests waiting in one API process share a fixed handful of Redis connections."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.jobs.messages import JobReply, decode_job, encode
from tests.conftest import REDIS_URL
from tests.factories import image_request, token_for

WAITING = 1000


async def connections_named(client: aioredis.Redis, prefix: str) -> int:
    return sum(1 for c in await client.client_list() if c.get("name", "").startswith(prefix))


async def answer_all(client: aioredis.Redis, keys: Keys, expected: int) -> int:
    """Play the worker: reply to every queued job (the hub and controller path are what is tested)."""
    answered = 0
    while answered < expected:
        entries = await client.xrange(keys.jobs_stream, count=expected)
        for msg_id, fields in entries:
            job = decode_job(fields)
            reply = JobReply(job_id=job.job_id, status_code=400, body={
                "statusCode": 400, "message": f"done {job.job_id}", "error": "Bad Request"})
            await client.xadd(job.reply_stream, encode(reply))
            await client.expire(job.reply_stream, 60)
            await client.xdel(keys.jobs_stream, msg_id)
            answered += 1
        await asyncio.sleep(0.05)
    return answered


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_thousand_waiting_requests_use_a_few_connections(settings, redis_prefix) -> None:
    from msgspec.structs import replace

    from service.embedded import embedded_stack
    from tests.factories import TestModels

    settings = replace(settings, redis_max_connections=8)
    async with embedded_stack(settings, registry=TestModels.registry(), workers=0) as stack:
        app = stack.server.config.app
        token = token_for(settings, "u1")
        limits = httpx.Limits(max_connections=WAITING + 10, max_keepalive_connections=WAITING + 10)
        async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as http, \
                aioredis.Redis.from_url(REDIS_URL) as control:
            requests = [asyncio.create_task(http.post("/video-gen/image-to-video", json=image_request(),
                                                      headers={"Authorization": f"Bearer {token}"}))
                        for _ in range(WAITING)]
            for _ in range(600):
                if app.state.hub.waiting == WAITING:
                    break
                await asyncio.sleep(0.05)
            assert app.state.hub.waiting == WAITING
            held = await connections_named(control, f"{redis_prefix}:api:")
            # The pool (8) plus the reply reader, however many requests wait.
            assert held <= settings.redis_max_connections + 1, f"{held} connections for {WAITING} waiting requests"
            await answer_all(control, Keys(redis_prefix), WAITING)
            responses = await asyncio.gather(*requests)
    messages = {r.json()["message"] for r in responses}
    assert [r.status_code for r in responses] == [400] * WAITING
    assert len(messages) == WAITING  # each request got its own job's reply
