"""Benchmark: many requests waiting on one API process.

Starts the embedded stack (child redis-server, SQLite, no workers), puts N requests in flight,
then plays the worker by writing every job's reply at once, and measures how long the API takes
to hand all N answers back, and how many Redis connections it held meanwhile. The baseline is
N=1 in the same run; figures are per-request time as a ratio of that baseline.

    uv run python -m bench.waiting_requests [--sizes 1,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec
import redis.asyncio as aioredis

from service.core.auth import make_token
from service.core.embedded_redis import free_port
from service.core.keys import Keys
from service.core.settings import Settings
from service.embedded import embedded_stack
from service.jobs.messages import DATA_FIELD, JobReply, decode_job, encode


async def _answer(redis: aioredis.Redis, keys: Keys, n: int) -> None:
    """Play the workers: every queued job's reply, added to the inbox the job names."""
    entries = await redis.xrange(keys.jobs_stream, count=n)
    async with redis.pipeline(transaction=False) as pipe:
        for message_id, fields in entries:
            job = decode_job(fields[DATA_FIELD])
            body = msgspec.json.encode({"statusCode": 400, "message": job.job_id, "error": "Bad Request"})
            reply = JobReply(job_id=job.job_id, status_code=400, body=msgspec.Raw(body))
            pipe.xadd(job.inbox, {DATA_FIELD: encode(reply)})
            pipe.xdel(keys.jobs_stream, message_id)
        await pipe.execute()


async def _post(http: aiohttp.ClientSession, url: str, body: dict, token: str) -> tuple[int, str]:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.text()


async def _round(stack, http: aiohttp.ClientSession, redis: aioredis.Redis, token: str, n: int) -> tuple[float, int]:
    app, keys = stack.server.config.app, Keys(stack.settings.redis_key_prefix)
    body = {"id": "images/bench/source-image.png", "prompt": "bench"}
    url = f"{stack.url}/video-gen/image-to-video"
    tasks = [asyncio.create_task(_post(http, url, body, token)) for _ in range(n)]
    # waiting: registered with the inbox, and queued (a request registers just before it queues)
    while app.state.inbox.waiting < n or await redis.xlen(keys.jobs_stream) < n:
        done = [t for t in tasks if t.done()]
        if done:  # a request answered before its job did: not a waiting request, report it
            status, text = done[0].result()
            raise SystemExit(f"{len(done)} of {n} requests answered early: {status} {text[:200]}")
        await asyncio.sleep(0.01)
    held = sum(1 for c in await redis.client_list() if c.get("name", "").startswith(f"{keys.prefix}:api"))
    start = time.perf_counter()
    await _answer(redis, keys, n)
    responses = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    assert all(status == 400 for status, _ in responses)
    return elapsed, held


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'db.sqlite'}",
            storage_url=f"file://{tmp}/storage",
            port=free_port(),
            jwt_secret=secrets.token_urlsafe(32),
            rate_limit_per_minute=0,
            log_level="WARNING",
            sync_wait_seconds=300,
        )
        async with embedded_stack(settings, workers=0) as stack:
            token = make_token(settings.jwt_secret, "bench")
            # aiohttp rather than httpx: httpx's pool costs O(connections) per request, which would
            # make the client, not the API, the thing measured at 1,000 connections.
            connector = aiohttp.TCPConnector(limit=0)
            async with (
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(300)) as http,
                aioredis.Redis.from_url(stack.settings.redis_url) as redis,
            ):
                await _round(stack, http, redis, token, 1)  # warm-up
                rows = [(n, *await _round(stack, http, redis, token, n)) for n in sizes]
    base = rows[0][1] / rows[0][0]
    print(f"{'waiting':>8} {'total s':>9} {'ms/request':>11} {'vs baseline':>12} {'redis conns':>12}")
    for n, elapsed, held in rows:
        per = elapsed / n
        print(f"{n:>8} {elapsed:>9.3f} {per * 1000:>11.3f} {per / base:>11.3f}x {held:>12}")
    print(f"(baseline: {sizes[0]} waiting request; pool limit REDIS_MAX_CONNECTIONS={settings.redis_max_connections})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))
