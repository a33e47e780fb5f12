"""``video-gen worker``: one worker process (a consumer running each model's slots of jobs at once).

Its database pool is ``DATABASE_POOL_SIZE`` connections whatever the slots: a job holds one only
while it reads or writes, never while its model runs. CPU-bound work goes to a process pool of
``CPU_PROCESSES`` (the cores).

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

from models_registry import cpu
from models_registry.registry import ModelRegistry
from service.core import db
from service.core.checks import describe_connect_error, is_permanent_refusal
from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.core.tracing import configure_tracing
from service.generations.notify import WebhookNotifier
from service.generations.task import GenerationTask
from service.jobs.stream import JobStream
from service.storage.base import Storage
from service.storage.factory import storage_from_settings
from service.webhooks.queue import WebhookQueue
from service.webhooks.sender import Sender
from service.webhooks.service import WebhookDispatcher
from workers.faults import crash_point
from workers.metrics_server import start_metrics_server
from workers.scheduler import Scheduler
from workers.slots import model_limits

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
    configure_tracing("video-gen-worker")
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
        limits = model_limits(registry, settings.model_slots, settings.worker_concurrency)
        processes = cpu.start(settings.cpu_processes)
        stream = JobStream(
            redis,
            keys,
            reply_ttl=settings.reply_ttl_seconds,
            meta_ttl=settings.job_meta_ttl_seconds,
            idempotency_ttl=settings.idempotency_ttl_seconds,
            dead_letter_maxlen=settings.dead_letter_maxlen,
        )
        webhooks = WebhookQueue(redis, keys, retention_seconds=settings.webhook_retention_seconds)
        dispatcher = webhook_dispatcher(settings, webhooks)
        notifier = WebhookNotifier(
            webhooks,
            store,
            download_seconds=settings.download_url_seconds,
            on_queued=dispatcher.wake if dispatcher else lambda: None,
        )
        scheduler = Scheduler(
            stream,
            GenerationTask(
                settings,
                registry,
                store,
                fault=crash_point,
                on_started=notifier.job_started,
                publish=stream.publish,
            ),
            reader,
            name=name,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.job_lease_seconds,
            notify=notifier.job_ended,
            limits=limits,
            prefetch=settings.worker_prefetch,
            cancel_reader=cancels,
        )
        log.info("worker.capacity", model_slots=limits, cpu_processes=processes, db_pool=settings.database_pool_size)
        sending = asyncio.create_task(dispatcher.run(), name="webhooks") if dispatcher else None
        try:
            await _serve(scheduler, settings, stop, hurry)
        finally:
            if dispatcher and sending:
                await dispatcher.stop(grace=min(settings.shutdown_grace_seconds, settings.webhook_timeout_seconds))
                await sending
                await dispatcher.sender.close()
    finally:
        await asyncio.to_thread(cpu.stop)  # waits for the pool's processes: not on the event loop
        if owned[0]:
            await registry.close_all()
        if owned[1]:
            await store.close()
        await reader.aclose()
        await cancels.aclose()
        await redis.aclose()
        await db.disconnect()


def webhook_dispatcher(settings: Settings, queue: WebhookQueue) -> WebhookDispatcher | None:
    """The process's webhook sender; None without ``WEBHOOK_SECRET`` (deliveries then wait, queued,
    for a worker that has it)."""
    if not settings.webhook_keys:
        return None
    sender = Sender(
        settings.webhook_keys, timeout=settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private
    )
    return WebhookDispatcher(
        queue,
        sender,
        delays=settings.webhook_retry_delays,
        concurrency=settings.webhook_concurrency,
        poll_seconds=settings.webhook_poll_seconds,
        per_host=settings.webhook_per_host,
    )


async def _serve(scheduler: Scheduler, settings: Settings, stop: asyncio.Event, hurry: asyncio.Event) -> None:
    """Schedule jobs until ``stop``; then give running jobs the grace period (cut short by ``hurry``)."""
    runner = asyncio.create_task(scheduler.run(), name="scheduler")
    server = None
    if settings.metrics_port:
        server = await start_metrics_server(
            settings.host, settings.metrics_port, token=settings.metrics_token, alive=lambda: not runner.done()
        )
    log.info(
        "worker.started",
        consumer=scheduler.name,
        metrics_port=settings.metrics_port or None,
    )
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
        if server is not None:
            server.close()
        if not runner.done():
            scheduler.stop()  # its loop ends even if the cancel below is swallowed (service.core.tasks)
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
                await db.connect(settings.database_url, pool_size=settings.database_pool_size, name="video-gen-worker")
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
