"""The embedded stack: SQLite, a child redis-server, local storage, the API and a worker pool in
one process. ``video-gen serve`` keeps it running; ``video-gen demo`` runs one request through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec
import uvicorn

from models_registry.registry import ModelRegistry
from service.app import create_app
from service.core import db
from service.core.embedded_redis import EmbeddedRedis
from service.core.http import json_error_protocol, lean_proxy_headers
from service.core.settings import Settings
from service.core.tracing import configure_tracing
from service.ledger import service as ledger
from service.storage.base import Storage
from service.storage.factory import storage_from_settings
from workers.main import run_worker

DEMO_USER = "user123"  # the spec's curl examples use images/user123/source-image.png
DEMO_IMAGE_KEY = f"images/{DEMO_USER}/source-image.png"
DEMO_CREDITS = 900  # one 750-credit generation leaves the spec's example balance, 150.0


def sample_image() -> bytes:
    return resources.files("service.assets").joinpath("sample-image.png").read_bytes()


async def seed_demo(settings: Settings, *, user_id: str = DEMO_USER, credits: int = DEMO_CREDITS) -> None:
    """Put the sample image under the demo user's prefix and top its balance up to ``credits``."""
    storage = storage_from_settings(settings)
    await storage.open()
    try:
        key = f"images/{user_id}/source-image.png"
        await storage.put_bytes(key, sample_image(), content_type="image/png", metadata={})
    finally:
        await storage.close()
    missing = credits - await ledger.balance_of(user_id)
    if missing > 0:
        await ledger.grant(user_id, missing, actor=ledger.SYSTEM, reason="demo top-up")


@dataclass
class Stack:
    settings: Settings
    server: uvicorn.Server
    tasks: list[asyncio.Task[Any]]

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"


@contextlib.asynccontextmanager
async def embedded_stack(
    settings: Settings, *, workers: int = 1, registry: ModelRegistry | None = None, storage: Storage | None = None
) -> AsyncIterator[Stack]:
    """Start everything; on exit stop the API, drain the workers and stop redis-server.

    ``registry`` and ``storage`` replace the entry-point registry and ``STORAGE_URL`` (tests); the
    stack opens and closes them either way.
    """
    configure_tracing("video-gen")  # before any client is made: httpx clients are instrumented at creation
    redis = EmbeddedRedis() if settings.embedded_redis else None
    if redis:
        settings = msgspec.structs.replace(settings, redis_url=redis.start())
    registry = registry or ModelRegistry.load()
    storage = storage or storage_from_settings(settings)
    try:
        await db.migrate(settings.database_url)
        await db.connect(settings.database_url)
        await storage.open()
        await registry.open_all(settings)
        server = _api_server(settings, registry, storage)
        stop = asyncio.Event()
        tasks = await _start(server, settings, registry, storage, stop=stop, workers=workers)
        try:
            yield Stack(settings, server, tasks)
        finally:
            server.should_exit = True
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await registry.close_all()
        await storage.close()
        await db.disconnect()
        if redis:
            redis.stop()


def _api_server(settings: Settings, registry: ModelRegistry, storage: Storage) -> uvicorn.Server:
    """The API's uvicorn server, not started; it leaves the signals to the CLI."""
    app = create_app(settings, registry=registry, storage=storage)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http=json_error_protocol(settings.http_parser, settings.http_read_timeout_seconds),
        timeout_keep_alive=settings.http_keep_alive_seconds,
        # A client that stops reading a response (a browser's paused <video>) must not hold shutdown forever.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    server = uvicorn.Server(lean_proxy_headers(config))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the CLI owns signals
    return server


async def _start(
    server: uvicorn.Server,
    settings: Settings,
    registry: ModelRegistry,
    storage: Storage,
    *,
    stop: asyncio.Event,
    workers: int,
) -> list[asyncio.Task[Any]]:
    """Start the API and ``workers`` workers (running until ``stop``); return once the API listens."""
    tasks = [asyncio.create_task(server.serve(), name="api")]
    # One process: the API's /metrics already shows the workers' metrics (one registry).
    in_process = msgspec.structs.replace(settings, metrics_port=0)
    tasks += [
        asyncio.create_task(
            run_worker(in_process, stop=stop, name=f"embedded-{i}", registry=registry, storage=storage),
            name=f"worker-{i}",
        )
        for i in range(workers)
    ]
    while not server.started:
        if tasks[0].done():
            await tasks[0]
            raise SystemExit("the API failed to start")
        await asyncio.sleep(0.05)
    return tasks
