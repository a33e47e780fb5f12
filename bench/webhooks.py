"""Benchmark: webhook deliveries through the durable queue against bare signed POSTs.

The baseline POSTs N signed payloads straight to a loopback receiver, ``--concurrency`` at a
time, with the same HTTP client settings as the sender (no redirects, a new connection each).
The measured run queues the same N deliveries in Redis and lets a ``WebhookDispatcher`` (the
worker's loop: claim, resolve and check the address, sign, POST, record the attempt) deliver them
all. Both run in this command against a private redis-server, so the ratio is what durability,
the SSRF check and the attempt records cost on this machine; Redis commands per delivery come from
that server's own counter.

    uv run python -m bench.webhooks [--deliveries 2000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import time

import httpx
import redis.asyncio as aioredis
import structlog

from service.core.embedded_redis import EmbeddedRedis
from service.core.keys import Keys
from service.core.settings import parse_webhook_secret
from service.webhooks import signing
from service.webhooks.messages import WebhookDelivery, WebhookEvent, delivery_id
from service.webhooks.queue import WebhookQueue
from service.webhooks.sender import Sender
from service.webhooks.service import WebhookDispatcher

PAYLOAD = (
    '{"type":"generation.succeeded","timestamp":"2026-11-27T21:00:00Z","data":{"jobId":"%s","status":"succeeded"}}'
)


class Receiver:
    """Answers every request 204 and counts them (reads the body, verifies nothing)."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.expect = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        self.count += 1
        if self.count >= self.expect:
            self.done.set()


async def baseline(url: str, n: int, concurrency: int, keys: list[bytes]) -> float:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        follow_redirects=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:

        async def post(i: int) -> None:
            body = (PAYLOAD % f"base{i}").encode()
            async with limit:
                headers = signing.headers(keys, f"msg_base{i}", int(time.time()), body)
                r = await client.post(url, content=body, headers={**headers, "content-type": "application/json"})
                assert r.status_code == 204

        started = time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(n)))
        return time.perf_counter() - started


async def queued(url: str, n: int, concurrency: int, keys: list[bytes], redis_url: str) -> tuple[float, float]:
    client = aioredis.Redis.from_url(redis_url)
    queue = WebhookQueue(client, Keys("bench"), retention_seconds=600)
    for i in range(n):
        job = f"job{i}"
        await queue.enqueue(
            WebhookDelivery(
                id=delivery_id(job, WebhookEvent.SUCCEEDED),
                job_id=job,
                user_id="u",
                event=WebhookEvent.SUCCEEDED,
                url=url,
                payload=PAYLOAD % job,
                created_at=time.time(),
            )
        )
    sender = Sender(keys, timeout=10.0, allow_private=True)
    dispatcher = WebhookDispatcher(
        queue, sender, delays=[1.0], concurrency=concurrency, poll_seconds=0.05, per_host=concurrency
    )
    before = int((await client.info("stats"))["total_commands_processed"])
    started = time.perf_counter()
    runner = asyncio.create_task(dispatcher.run())
    while await queue.due():
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await dispatcher.stop(1.0)
    await runner
    commands = int((await client.info("stats"))["total_commands_processed"]) - before
    await sender.close()
    await client.aclose()
    return elapsed, commands / n


async def main(n: int, concurrency: int) -> None:
    keys = [parse_webhook_secret("whsec_" + base64.b64encode(os.urandom(32)).decode(), "bench")]
    redis = EmbeddedRedis()
    redis_url = redis.start()
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks"
    try:
        receiver.expect = n
        base = await baseline(url, n, concurrency, keys)
        receiver.count, receiver.expect = 0, n
        measured, per_delivery = await queued(url, n, concurrency, keys, redis_url)
        assert receiver.count == n, receiver.count
    finally:
        server.close()
        redis.stop()
    print(f"{n} deliveries to a loopback receiver, {concurrency} at a time (one process, one core's share)")
    print(f"{'run':<40} {'seconds':>8} {'per s':>8} {'vs baseline':>12} {'Redis cmds/delivery':>20}")
    print(f"{'baseline: bare signed POSTs':<40} {base:>8.2f} {n / base:>8.0f} {1.0:>11.2f}x {'-':>20}")
    print(
        f"{'queued: Redis queue + dispatcher':<40} {measured:>8.2f} {n / measured:>8.0f} "
        f"{measured / base:>11.2f}x {per_delivery:>20.1f}"
    )


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # no line per delivery
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.deliveries, args.concurrency))
