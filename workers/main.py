"""``video-gen worker``: one worker process (a consumer running each model's slots of jobs at once).

Its database pool is ``DATABASE_POOL_SIZE`` connections whatever the slots: a job holds one only
while it reads or writes, never while its model runs. CPU-bound work goes to a process pool of
``CPU_PROCESSES`` (the cores), blocking file work to ``IO_THREADS`` threads.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from models_registry import cpu
from models_registry.registry import ModelRegistry
from service.core import db
from service.core.settings import Settings
from service.core.tracing import configure_tracing
from service.storage import images
from service.storage.base import Storage
from service.storage.factory import storage_from_settings
from workers.metrics_server import start_metrics_server
from workers.scheduler import Scheduler
from workers.slots import model_limits
from workers.startup import connect_database, consumer_name, signal_event
from workers.wiring import RedisClients, build_scheduler

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    storage: Storage | None = None,
    stop: asyncio.Event | None = None,
    name: str | None = None,
    on_started: Callable[[], None] | None = None,
    own_loop: bool = False,
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run as a process), then shut down gracefully;
    ``on_started`` is called once everything is open, before the first job (``video-gen worker``:
    ``service.core.heap.settle``). With ``own_loop`` (the worker is the process), the loop's default
    executor gets ``IO_THREADS`` threads."""
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: run `video-gen serve` for the embedded stack, or set REDIS_URL")
    configure_tracing("video-gen-worker")
    if own_loop:
        # A pool of its own size: small now that small reads run on the loop and each batch of stores
        # takes one thread (32 threads, against 8 or 4, cost about a tenth of the jobs/s in the
        # pipeline benchmark: work handed round to more threads, each waiting for the GIL).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=settings.io_threads, thread_name_prefix="io")
        )
    hurry = asyncio.Event()
    stop = stop or signal_event(hurry)
    if not await connect_database(settings, stop):
        return  # stopped before the database ever answered
    # Resources passed in belong to the caller (the embedded stack shares them); ours we open and close.
    owned = registry is None, storage is None
    registry = registry or ModelRegistry.load()
    store = storage or storage_from_settings(settings)
    name = name or consumer_name()
    clients = RedisClients.open(settings, name)
    try:
        if owned[1]:
            await store.open()
        await asyncio.to_thread(images.load_decoders)
        if owned[0]:
            await registry.open_all(settings)
        await _run(settings, registry, store, clients, name=name, stop=stop, hurry=hurry, on_started=on_started)
    finally:
        if owned[0]:
            await registry.close_all()
        if owned[1]:
            await store.close()
        await clients.close()
        await db.disconnect()


async def _run(
    settings: Settings,
    registry: ModelRegistry,
    store: Storage,
    clients: RedisClients,
    *,
    name: str,
    stop: asyncio.Event,
    hurry: asyncio.Event,
    on_started: Callable[[], None] | None,
) -> None:
    """Build the scheduler and the webhook sender, run both until ``stop``, then stop the sender."""
    limits = model_limits(registry, settings.model_slots, settings.worker_concurrency)
    processes = cpu.start(settings.cpu_processes)
    try:
        scheduler, dispatcher = build_scheduler(settings, registry, store, clients, name=name, limits=limits)
        log.info("worker.capacity", model_slots=limits, cpu_processes=processes, db_pool=settings.database_pool_size)
        sending = asyncio.create_task(dispatcher.run(), name="webhooks") if dispatcher else None
        if on_started is not None:
            on_started()
        try:
            await _serve(scheduler, settings, stop, hurry)
        finally:
            if dispatcher and sending:
                await dispatcher.stop(grace=min(settings.shutdown_grace_seconds, settings.webhook_timeout_seconds))
                await sending
                await dispatcher.sender.close()
            await asyncio.to_thread(scheduler.task.close)
    finally:
        # Released only if taken: the embedded stack's pools share it, and the last one closes it.
        await asyncio.to_thread(cpu.stop)  # waits for the pool's processes: not on the event loop


async def _serve(scheduler: Scheduler, settings: Settings, stop: asyncio.Event, hurry: asyncio.Event) -> None:
    """Schedule jobs until ``stop``; then give running jobs the grace period (cut short by ``hurry``)."""
    runner = asyncio.create_task(scheduler.run(), name="scheduler")
    server = None
    if settings.metrics_port:
        server = await start_metrics_server(
            settings.host, settings.metrics_port, token=settings.metrics_token, alive=lambda: not runner.done()
        )
    log.info("worker.started", consumer=scheduler.name, metrics_port=settings.metrics_port or None)
    try:
        await stop.wait()
        await _wind_down(scheduler, runner, settings.shutdown_grace_seconds, hurry)
    finally:
        if server is not None:
            server.close()
        if not runner.done():
            scheduler.stop()  # its loop ends even if the cancel below is swallowed (service.core.tasks)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def _wind_down(
    scheduler: Scheduler, runner: asyncio.Task[None], grace_seconds: float, hurry: asyncio.Event
) -> None:
    """Stop claiming, let running jobs finish for ``grace_seconds`` (or until ``hurry``), hand the rest over."""
    log.info("worker.stopping", consumer=scheduler.name, running=len(scheduler.active), grace=grace_seconds)
    scheduler.stop()
    await runner
    grace = asyncio.create_task(scheduler.shutdown(grace_seconds))
    hurried = asyncio.create_task(hurry.wait())
    await asyncio.wait([grace, hurried], return_when=asyncio.FIRST_COMPLETED)
    if not grace.done():  # a second signal: no more grace
        grace.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await grace
        await scheduler.shutdown(0)
    hurried.cancel()
    log.info("worker.stopped", consumer=scheduler.name)
