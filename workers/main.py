"""``video-gen worker``: one worker process (a consumer running up to N jobs at once)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from models_registry.registry import ModelRegistry
from service.core import db
from service.core.keys import Keys
from service.core.redis import make_redis
from service.core.settings import Settings
from service.storage.base import Storage
from service.storage.factory import storage_from_settings
from workers.consumer import Consumer
from workers.pipeline import Pipeline

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, *, registry: ModelRegistry | None = None, storage: Storage | None = None,
                     stop: asyncio.Event | None = None, name: str | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run as a process), then drain gracefully."""
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: run `video-gen serve` for the embedded stack, or set REDIS_URL")
    stop = stop or _signal_event()
    await db.connect(settings.database_url, pool_size=settings.worker_concurrency + 2)
    await db.require_migrated()
    # Resources passed in belong to the caller (the embedded stack shares them); ours we open and close.
    owned = registry is None, storage is None
    registry = registry or ModelRegistry.load()
    store = storage or storage_from_settings(settings)
    redis = make_redis(settings.redis_url, max_connections=settings.worker_concurrency * 2 + 4)
    if owned[1]:
        await store.open()
    if owned[0]:
        await registry.open_all(settings)
    consumer = Consumer(redis, Keys(settings.redis_key_prefix), Pipeline(settings, registry, store),
                        concurrency=settings.worker_concurrency, lease_seconds=settings.job_lease_seconds,
                        reply_ttl=settings.reply_ttl_seconds, name=name)
    runner = asyncio.create_task(consumer.run(), name="consumer")
    log.info("worker.started", consumer=consumer.name, concurrency=settings.worker_concurrency)
    try:
        await stop.wait()
        consumer.stop()
        await runner
        left = await consumer.drain(settings.shutdown_grace_seconds)
        log.info("worker.stopped", consumer=consumer.name, left_for_reclaim=left)
    finally:
        if not runner.done():
            runner.cancel()
        if owned[0]:
            await registry.close_all()
        if owned[1]:
            await store.close()
        await redis.aclose()
        await db.disconnect()


def _signal_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
