"""``video-gen worker``: one worker process (a consumer running up to N jobs at once).

SIGTERM (or SIGINT) stops claiming at once, lets running jobs finish for
``SHUTDOWN_GRACE_SECONDS`` and hands the rest over to the other workers (reclaimable at once, no
attempt counted); the process then exits 0. A second signal skips the grace period. SIGKILL loses
nothing either: the jobs are reclaimed after ``JOB_LEASE_SECONDS``.

The worker waits for the database and Redis at start (a process manager may start it first), and
rides out their outages while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

import structlog

from models_registry.registry import ModelRegistry
from service.core import db
from service.core.checks import describe_connect_error, is_permanent_refusal
from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.generations.task import GenerationTask
from service.jobs.stream import JobStream
from service.storage.base import Storage
from service.storage.factory import storage_from_settings
from workers.faults import crash_point
from workers.scheduler import Scheduler

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    storage: Storage | None = None,
    stop: asyncio.Event | None = None,
    name: str | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run as a process), then shut down gracefully."""
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: run `video-gen serve` for the embedded stack, or set REDIS_URL")
    hurry = asyncio.Event()
    stop = stop or _signal_event(hurry)
    if not await _connect_database(settings, stop):
        return  # stopped before the database ever answered
    # Resources passed in belong to the caller (the embedded stack shares them); ours we open and close.
    owned = registry is None, storage is None
    registry = registry or ModelRegistry.load()
    store = storage or storage_from_settings(settings)
    name = name or consumer_name()
    keys = Keys(settings.redis_key_prefix)
    redis = make_redis(
        settings.redis_url, max_connections=settings.redis_max_connections, name=f"{keys.prefix}:worker:{name}"
    )
    reader = make_dedicated_redis(settings.redis_url, name=f"{keys.prefix}:worker:{name}:claim")
    cancels = make_dedicated_redis(settings.redis_url, name=f"{keys.prefix}:worker:{name}:cancels")
    try:
        if owned[1]:
            await store.open()
        if owned[0]:
            await registry.open_all(settings)
        stream = JobStream(
            redis,
            keys,
            reply_ttl=settings.reply_ttl_seconds,
            meta_ttl=settings.job_meta_ttl_seconds,
            idempotency_ttl=settings.idempotency_ttl_seconds,
            dead_letter_maxlen=settings.dead_letter_maxlen,
        )
        scheduler = Scheduler(
            stream,
            GenerationTask(settings, registry, store, fault=crash_point, publish=stream.publish),
            reader,
            name=name,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.job_lease_seconds,
            cancel_reader=cancels,
        )
        await _serve(scheduler, settings, stop, hurry)
    finally:
        if owned[0]:
            await registry.close_all()
        if owned[1]:
            await store.close()
        await reader.aclose()
        await cancels.aclose()
        await redis.aclose()
        await db.disconnect()


async def _serve(scheduler: Scheduler, settings: Settings, stop: asyncio.Event, hurry: asyncio.Event) -> None:
    """Schedule jobs until ``stop``; then give running jobs the grace period (cut short by ``hurry``)."""
    runner = asyncio.create_task(scheduler.run(), name="scheduler")
    log.info("worker.started", consumer=scheduler.name, concurrency=settings.worker_concurrency)
    try:
        await stop.wait()
        log.info(
            "worker.stopping",
            consumer=scheduler.name,
            running=len(scheduler.active),
            grace=settings.shutdown_grace_seconds,
        )
        scheduler.stop()
        await runner
        grace = asyncio.create_task(scheduler.shutdown(settings.shutdown_grace_seconds))
        hurried = asyncio.create_task(hurry.wait())
        await asyncio.wait([grace, hurried], return_when=asyncio.FIRST_COMPLETED)
        if not grace.done():  # a second signal: no more grace
            grace.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await grace
            await scheduler.shutdown(0)
        hurried.cancel()
        log.info("worker.stopped", consumer=scheduler.name)
    finally:
        if not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def _connect_database(settings: Settings, stop: asyncio.Event) -> bool:
    """Open the database pool, waiting (and saying so) while the database is unreachable.

    True once connected; False when ``stop`` came first (nothing left to release)."""
    connected = False
    while not stop.is_set():
        try:
            if not connected:
                await db.connect(
                    settings.database_url, pool_size=settings.worker_concurrency + 2, name="video-gen-worker"
                )
                connected = True
            await db.require_migrated()
            return True
        except SystemExit:
            if connected:
                await db.disconnect()
            raise
        except Exception as exc:
            if is_permanent_refusal(exc):  # no such database or role: waiting will not mend it
                raise SystemExit(f"video-gen: {describe_connect_error(settings.database_url, exc)}") from None
            log.warning("worker.database_unavailable", error=describe_connect_error(settings.database_url, exc))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
    if connected:
        await db.disconnect()
    return False


def consumer_name() -> str:
    """This process's consumer name in the group: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _signal_event(hurry: asyncio.Event) -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if event.is_set():
            hurry.set()
        event.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return event
