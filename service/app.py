"""The Litestar application factory: its lifespan, and the parts handlers receive by injection.

Handlers declare what they use (``registry``, ``stream``, ``storage``, ``settings``, ``redis``,
``generations``, ``verifier``, ``principal``) as typed parameters; each is provided once, here, from what the
lifespan opened. No handler reads ``app.state``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.stores.redis import RedisStore

from models_registry.registry import ModelRegistry
from service.admin.endpoints import AdminController
from service.admin.queue_endpoints import QueueAdminController
from service.catalog.endpoints import CatalogueController
from service.console import console_routes, console_templates
from service.core import db
from service.core.auth import Principal, jwt_auth
from service.core.exception_handlers import EXCEPTION_HANDLERS
from service.core.keys import Keys
from service.core.logging import structlog_plugin
from service.core.redis import make_dedicated_redis, make_redis
from service.core.settings import Settings
from service.core.tokens import TokenVerifier
from service.core.validation import strict_body
from service.generations.endpoints import GenerationController
from service.generations.service import GenerationService
from service.health.endpoints import HealthController
from service.jobs.inbox import ReplyInbox
from service.jobs.shutdown import install_shutdown_hook
from service.jobs.stream import JobStream
from service.jobs.watchers import JobWatchers
from service.ledger.endpoints import CreditsController
from service.storage.base import Storage
from service.storage.endpoints import FilesController
from service.storage.factory import storage_from_settings
from service.storage.upload_endpoints import UploadsController

CONTROLLERS: list[Any] = [
    GenerationController,
    CatalogueController,
    HealthController,
    FilesController,
    UploadsController,
    CreditsController,
    AdminController,
    QueueAdminController,
]
SHARED = ("settings", "registry", "storage", "stream", "redis", "generations", "verifier", "watchers")


def _rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    # Per caller (its token) rather than per IP: product teams call from a few shared egress IPs.
    auth = request.headers.get("authorization")
    return hashlib.sha256(auth.encode()).hexdigest()[:32] if auth else get_remote_address(request)


def _shared(name: str) -> Provide:
    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


def _principal(request: Request[Principal, Any, Any]) -> Principal:
    return request.user


def _lifespan(
    settings: Settings, keys: Keys, verifier: TokenVerifier, registry: ModelRegistry | None, storage: Storage | None
) -> Callable[[Litestar], Any]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.connect(settings.database_url, name="video-gen-api")
        await db.require_migrated()
        redis = make_redis(
            settings.redis_url, max_connections=settings.redis_max_connections, name=f"{keys.prefix}:api"
        )
        stream = JobStream(
            redis,
            keys,
            reply_ttl=settings.reply_ttl_seconds,
            meta_ttl=settings.job_meta_ttl_seconds,
            idempotency_ttl=settings.idempotency_ttl_seconds,
        )
        inbox = ReplyInbox(stream, make_dedicated_redis(settings.redis_url, name=f"{keys.prefix}:api:inbox"))
        watchers = JobWatchers(stream, make_dedicated_redis(settings.redis_url, name=f"{keys.prefix}:api:events"))
        store = storage or storage_from_settings(settings)
        if storage is None:  # a storage passed in is opened and closed by its owner
            await store.open()
        await inbox.start()
        await watchers.start()
        models = registry or ModelRegistry.load()
        app.state.update(
            settings=settings,
            registry=models,
            storage=store,
            stream=stream,
            redis=redis,
            inbox=inbox,
            watchers=watchers,
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


def create_app(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    storage: Storage | None = None,
    controllers: list[Any] | None = None,
) -> Litestar:
    """Build the API. ``REDIS_URL`` must be set (``video-gen serve`` sets it for the embedded stack).
    A token configuration that cannot work raises ``SettingsError`` (one line)."""
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is not set: run `video-gen serve` for the embedded stack, or set REDIS_URL")
    verifier = TokenVerifier(settings)
    keys = Keys(settings.redis_key_prefix)
    rate_store = "rate_limit"
    stores = {rate_store: RedisStore.with_client(url=settings.redis_url, namespace=keys.rate_limit)}
    middleware = []
    if settings.rate_limit_per_minute > 0:
        middleware.append(
            RateLimitConfig(
                rate_limit=("minute", settings.rate_limit_per_minute),
                store=rate_store,
                # Following a job's events is one request for its whole life, not polling: not counted.
                exclude=["^/health", "^/metrics", "^/schema", "^/console", "^/video-gen/jobs/[^/]+/events$"],
                identifier_for_request=_rate_limit_identity,
            ).middleware
        )
    prometheus = PrometheusConfig(app_name="video_gen", prefix="video_gen", group_path=True, exclude=["^/metrics"])
    return Litestar(
        route_handlers=[*(controllers or CONTROLLERS), PrometheusController, *console_routes(settings, verifier)],
        lifespan=[_lifespan(settings, keys, verifier, registry, storage)],
        dependencies={
            **{name: _shared(name) for name in SHARED},
            "principal": Provide(_principal, sync_to_thread=False),
        },
        before_request=strict_body,
        on_app_init=[jwt_auth(verifier).on_app_init],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[prometheus.middleware, *middleware],
        stores=stores,
        plugins=[structlog_plugin(settings.log_level)],
        template_config=console_templates(),
        openapi_config=OpenAPIConfig(
            title="video-gen",
            version="0.1.0",
            path="/schema",
            description="Image-to-video generation: the spec's endpoint plus jobs, models, credits and admin.",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        ),
        debug=False,
    )


__all__ = ["create_app"]
