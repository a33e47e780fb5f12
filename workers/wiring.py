"""The worker's parts, built from its settings: its Redis clients, the job stream, the webhook
sender and notifier, the generation task and the scheduler that runs it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from models_registry.registry import ModelRegistry
from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.generations.notify import WebhookNotifier
from service.generations.task import GenerationTask
from service.jobs.stream import JobStream
from service.storage.base import Storage
from service.webhooks.queue import WebhookQueue
from service.webhooks.sender import Sender
from service.webhooks.service import WebhookDispatcher
from workers.faults import crash_point
from workers.scheduler import Scheduler


@dataclass(frozen=True)
class RedisClients:
    """The worker's Redis clients: a pool for commands, and one connection each for the blocking
    reads of the claim loop and of cancel notices (so neither waits behind the other)."""

    keys: Keys
    pool: Redis
    claims: Redis
    cancels: Redis

    @classmethod
    def open(cls, settings: Settings, name: str) -> RedisClients:
        assert settings.redis_url
        keys = Keys(settings.redis_key_prefix)
        label = f"{keys.prefix}:worker:{name}"
        return cls(
            keys,
            make_redis(settings.redis_url, max_connections=settings.redis_max_connections, name=label),
            make_dedicated_redis(settings.redis_url, name=f"{label}:claim"),
            make_dedicated_redis(settings.redis_url, name=f"{label}:cancels"),
        )

    async def close(self) -> None:
        await self.claims.aclose()
        await self.cancels.aclose()
        await self.pool.aclose()


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


def job_stream(settings: Settings, clients: RedisClients) -> JobStream:
    return JobStream(
        clients.pool,
        clients.keys,
        reply_ttl=settings.reply_ttl_seconds,
        meta_ttl=settings.job_meta_ttl_seconds,
        idempotency_ttl=settings.idempotency_ttl_seconds,
        dead_letter_maxlen=settings.dead_letter_maxlen,
    )


def build_scheduler(
    settings: Settings,
    registry: ModelRegistry,
    store: Storage,
    clients: RedisClients,
    *,
    name: str,
    limits: Mapping[str, int],
) -> tuple[Scheduler, WebhookDispatcher | None]:
    """The scheduler running ``registry``'s models, and the webhook sender its notifier wakes (if any)."""
    stream = job_stream(settings, clients)
    webhooks = WebhookQueue(clients.pool, clients.keys, retention_seconds=settings.webhook_retention_seconds)
    dispatcher = webhook_dispatcher(settings, webhooks)
    notifier = WebhookNotifier(
        webhooks,
        store,
        download_seconds=settings.download_url_seconds,
        on_queued=dispatcher.wake if dispatcher else lambda: None,
    )
    task = GenerationTask(
        settings, registry, store, fault=crash_point, on_started=notifier.job_started, publish=stream.publish
    )
    scheduler = Scheduler(
        stream,
        task,
        clients.claims,
        name=name,
        concurrency=settings.worker_concurrency,
        lease_seconds=settings.job_lease_seconds,
        notify=notifier.job_ended,
        limits=limits,
        cancel_reader=clients.cancels,
    )
    return scheduler, dispatcher
