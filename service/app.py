"""The Litestar application factory, and the parts handlers receive by injection (what ``lifespan.py`` opened).

Handlers declare what they use (``registry``, ``stream``, ``storage``, ``settings``, ``redis``,
``generations``, ``verifier``, ``principal``) as typed parameters; each is provided once, here, from what the
lifespan opened. No handler reads ``app.state``.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig

from models_registry.registry import ModelRegistry
from service.admin.endpoints import AdminController
from service.admin.queue_endpoints import QueueAdminController
from service.admin.webhook_endpoints import WebhookAdminController
from service.catalog.endpoints import CatalogueController
from service.console import console_routes, console_templates
from service.core.auth import Principal, jwt_auth
from service.core.docs import docs_assets, render_plugins
from service.core.exception_handlers import EXCEPTION_HANDLERS
from service.core.http_metrics import LeanPrometheusMiddleware
from service.core.keys import Keys
from service.core.lean import share_exception_handlers
from service.core.logging import structlog_plugin
from service.core.openapi import truthful
from service.core.ratelimit import rate_limits
from service.core.request_context import RequestContextMiddleware
from service.core.settings import Settings, cors_origins
from service.core.tokens import TokenVerifier
from service.core.tracing import configure_tracing
from service.core.validation import strict_body
from service.generations.endpoints import GenerationController
from service.generations.job_endpoints import JobController
from service.health.endpoints import HealthController
from service.health.metrics import metrics_controller
from service.ledger.endpoints import CreditsController
from service.lifespan import api_lifespan
from service.storage.base import Storage
from service.storage.endpoints import FilesController
from service.storage.upload_endpoints import UploadsController

CONTROLLERS: list[Any] = [
    GenerationController,
    JobController,
    CatalogueController,
    HealthController,
    FilesController,
    UploadsController,
    CreditsController,
    AdminController,
    QueueAdminController,
    WebhookAdminController,
]
SHARED = ("settings", "registry", "storage", "stream", "redis", "generations", "webhooks", "verifier", "watchers")


def _cors(settings: Settings) -> CORSConfig | None:
    """Browsers may call the API from ``CORS_ALLOW_ORIGINS`` only; none when it is empty."""
    origins = cors_origins(settings)
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Prefer"],
        expose_headers=["Location", "Retry-After", "Preference-Applied"],
        max_age=600,
    )


def _shared(name: str) -> Provide:
    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


def _tracing_plugins() -> list[Any]:
    """Litestar's own OpenTelemetry plugin when ``OTEL_*`` asks for traces (``service.core.tracing``)."""
    provider = configure_tracing("video-gen-api")
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, exclude=["^/health", "^/metrics"]))]


def _principal(request: Request[Principal, Any, Any]) -> Principal:
    return request.user


def _dependencies() -> dict[str, Provide]:
    """What handlers receive: the parts the lifespan opened (``SHARED``) and the caller."""
    return {
        **{name: _shared(name) for name in SHARED},
        "principal": Provide(_principal, sync_to_thread=False),
    }


def _metrics_middleware() -> DefineMiddleware:
    """Prometheus' request metrics, grouped by route path, for every path but ``/metrics`` itself."""
    prometheus = PrometheusConfig(app_name="video_gen", prefix="video_gen", group_path=True, exclude=["^/metrics"])
    return DefineMiddleware(LeanPrometheusMiddleware, config=prometheus)


def _routes(settings: Settings, verifier: TokenVerifier, controllers: list[Any]) -> list[Any]:
    """The controllers, the metrics endpoint, the operator console and the docs' own assets."""
    return [
        *controllers,
        metrics_controller(settings.metrics_token),
        *console_routes(settings, verifier),
        *docs_assets(),
    ]


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="video-gen",
        version="0.1.0",
        path="/schema",
        description="Image-to-video generation: the spec's endpoint plus jobs, models, credits and admin.",
        render_plugins=render_plugins(),
    )


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
    stores, install_rate_limits = rate_limits(settings, keys, verifier)
    app = Litestar(
        route_handlers=_routes(settings, verifier, controllers or CONTROLLERS),
        lifespan=[api_lifespan(settings, keys, verifier, registry, storage)],
        dependencies=_dependencies(),
        before_request=strict_body,
        on_app_init=[jwt_auth(verifier).on_app_init, install_rate_limits],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[_metrics_middleware()],
        stores=stores,
        plugins=[structlog_plugin(settings.log_level, settings.log_format), *_tracing_plugins()],
        template_config=console_templates(),
        openapi_config=_openapi(),
        cors_config=_cors(settings),
        debug=False,
    )
    truthful(app.openapi_schema, max_prompt_chars=settings.max_prompt_chars)
    # Outside Litestar's exception handling, so that a 401 from the auth middleware or a 404 from
    # the router also gets the request id and its access line (app middleware runs inside it).
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler)
    share_exception_handlers(app)
    return app


__all__ = ["create_app"]
