"""The Litestar application factory and its lifespan."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.stores.redis import RedisStore

from models_registry.registry import ModelRegistry
from service.admin.endpoints import AdminController
from service.catalog.endpoints import CatalogueController
from service.core import db
from service.core.auth import jwt_auth
from service.core.exception_handlers import EXCEPTION_HANDLERS
from service.core.keys import Keys
from service.core.logging import structlog_plugin
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.generations.endpoints import GenerationController
from service.health.endpoints import HealthController
from service.jobs.endpoints import JobsController
from service.jobs.replies import ReplyHub
from service.jobs.service import JobQueue
from service.jobs.shutdown import install_shutdown_hook
from service.ledger.endpoints import CreditsController
from service.storage.base import Storage
from service.storage.endpoints import FilesController
from service.storage.factory import storage_from_settings

CONTROLLERS: list[Any] = [GenerationController, CatalogueController, HealthController, FilesController,
                          JobsController, CreditsController, AdminController]


def _rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    # Per caller (its token) rather than per IP: product teams call from a few shared egress IPs.
    auth = request.headers.get("authorization")
    return hashlib.sha256(auth.encode()).hexdigest()[:32] if auth else get_remote_address(request)


def create_app(settings: Settings, *, registry: ModelRegistry | None = None, storage: Storage | None = None,
               controllers: list[Any] | None = None) -> Litestar:
    """Build the API. ``REDIS_URL`` must be set (``video-gen serve`` sets it for the embedded stack)."""
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: run `video-gen serve` for the embedded stack, or set REDIS_URL")
    keys = Keys(settings.redis_key_prefix)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.connect(settings.database_url)
        await db.require_migrated()
        name = f"{keys.prefix}:api:{os.getpid()}"
        redis = make_redis(settings.redis_url, max_connections=settings.redis_max_connections, name=name)
        hub = ReplyHub(make_dedicated_redis(settings.redis_url, name=f"{name}:replies"), redis)
        store = storage or storage_from_settings(settings)
        if storage is None:  # a storage passed in is opened and closed by its owner
            await store.open()
        await hub.start()
        queue = JobQueue(redis, hub, keys, maxlen=settings.jobs_stream_maxlen, meta_ttl=settings.job_meta_ttl_seconds,
                         idempotency_ttl=settings.idempotency_ttl_seconds)
        app.state.update(
            settings=settings, keys=keys, redis=redis, hub=hub, storage=store,
            registry=registry or ModelRegistry.load(), queue=queue,
        )
        # Graceful shutdown: on SIGTERM, refuse new jobs (503) and answer waiting requests (202 + job id).
        uninstall_shutdown_hook = install_shutdown_hook(queue)
        try:
            yield
        finally:
            uninstall_shutdown_hook()
            queue.begin_shutdown()
            await hub.stop()
            if storage is None:
                await store.close()
            await redis.aclose()
            await db.disconnect()

    rate_store = "rate_limit"
    stores = {rate_store: RedisStore.with_client(url=settings.redis_url, namespace=f"{keys.prefix}:ratelimit")}
    middleware = []
    if settings.rate_limit_per_minute > 0:
        middleware.append(RateLimitConfig(
            rate_limit=("minute", settings.rate_limit_per_minute), store=rate_store,
            exclude=["^/health", "^/metrics", "^/schema"], identifier_for_request=_rate_limit_identity,
        ).middleware)
    prometheus = PrometheusConfig(app_name="video_gen", prefix="video_gen", group_path=True, exclude=["^/metrics"])
    return Litestar(
        route_handlers=[*(controllers or CONTROLLERS), PrometheusController],
        lifespan=[lifespan],
        on_app_init=[jwt_auth(settings.jwt_secret).on_app_init],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[prometheus.middleware, *middleware],
        stores=stores,
        plugins=[structlog_plugin(settings.log_level)],
        openapi_config=OpenAPIConfig(
            title="video-gen", version="0.1.0", path="/schema",
            description="Image-to-video generation: the spec's endpoint plus jobs, models, credits and admin.",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        ),
        debug=False,
    )


__all__ = ["create_app"]
