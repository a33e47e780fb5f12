"""The API's lifespan: what it opens at start (the database, Redis, the job stream's readers, the
storage, the registry) and puts in ``app.state`` for injection, and closes at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from redis.asyncio import Redis

from models_registry.registry import ModelRegistry
from service.core import db
from service.core.keys import Keys
from service.core.limits import raise_fd_limit, waiting_capacity
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.core.tokens import TokenVerifier
from service.generations.service import GenerationService
from service.jobs.inbox import ReplyInbox
from service.jobs.shutdown import install_shutdown_hook
from service.jobs.stream import JobStream
from service.jobs.watchers import JobWatchers
from service.storage.base import Storage
from service.storage.factory import storage_from_settings
from service.webhooks.queue import WebhookQueue

log = structlog.get_logger(__name__)


def _job_clients(settings: Settings, keys: Keys) -> tuple[Redis, JobStream, ReplyInbox, JobWatchers]:
    """The API's Redis pool and job stream, and its one inbox and one events reader (each on its own
    connection), the inbox sized to the file descriptors this process may open."""
    assert settings.redis_url
    redis = make_redis(settings.redis_url, max_connections=settings.redis_max_connections, name=f"{keys.prefix}:api")
    stream = JobStream(
        redis,
        keys,
        reply_ttl=settings.reply_ttl_seconds,
        meta_ttl=settings.job_meta_ttl_seconds,
        idempotency_ttl=settings.idempotency_ttl_seconds,
    )
    soft, hard = raise_fd_limit()
    capacity = waiting_capacity(settings.max_waiting_requests, soft)
    log.info("api.capacity", fd_soft_limit=soft, fd_hard_limit=hard, max_waiting_requests=capacity)
    reader = make_dedicated_redis(settings.redis_url, name=f"{keys.prefix}:api:inbox")
    inbox = ReplyInbox(stream, reader, capacity=capacity)
    watchers = JobWatchers(stream, make_dedicated_redis(settings.redis_url, name=f"{keys.prefix}:api:events"))
    return redis, stream, inbox, watchers


async def _open(
    settings: Settings, keys: Keys, storage: Storage | None
) -> tuple[Redis, JobStream, ReplyInbox, JobWatchers, Storage]:
    """At start: the database connected and migrated, the job clients made, the storage opened
    (unless passed in) and the inbox and events readers started."""
    await db.connect(settings.database_url, pool_size=settings.database_pool_size, name="video-gen-api")
    await db.require_migrated()
    redis, stream, inbox, watchers = _job_clients(settings, keys)
    store = storage or storage_from_settings(settings)
    if storage is None:  # a storage passed in is opened and closed by its owner
        await store.open()
    await inbox.start()
    await watchers.start()
    return redis, stream, inbox, watchers, store


def api_lifespan(
    settings: Settings, keys: Keys, verifier: TokenVerifier, registry: ModelRegistry | None, storage: Storage | None
) -> Callable[[Litestar], Any]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis, stream, inbox, watchers, store = await _open(settings, keys, storage)
        models = registry or ModelRegistry.load()
        app.state.update(
            settings=settings,
            registry=models,
            storage=store,
            stream=stream,
            redis=redis,
            inbox=inbox,
            watchers=watchers,
            webhooks=WebhookQueue(redis, keys, retention_seconds=settings.webhook_retention_seconds),
            generations=GenerationService(registry=models, stream=stream, inbox=inbox, settings=settings),
            verifier=verifier,
        )
        # Graceful shutdown: on SIGTERM, refuse new jobs (503) and answer waiting requests (202 + job id).
        uninstall_shutdown_hook = install_shutdown_hook(inbox)
        if verifier.jwks is not None:  # the identity provider's keys, kept fresh in the background
            await verifier.jwks.start()
        try:
            yield
        finally:
            if verifier.jwks is not None:
                await verifier.jwks.stop()
            uninstall_shutdown_hook()
            inbox.release_all()
            await inbox.stop()
            await watchers.stop()
            if storage is None:
                await store.close()
            await redis.aclose()
            await db.disconnect()

    return lifespan
