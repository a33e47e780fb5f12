"""Rate limits (Litestar's rate limiter on the Redis store), keyed on who is calling.

The identity is the verified user (a Bearer token the ``TokenVerifier`` accepts: its user id), else
the client's address (uvicorn's proxy-headers support rewrites it from ``X-Forwarded-For`` for the
proxies listed in ``FORWARDED_ALLOW_IPS``). Another spelling of the same token, or garbage, buys no
extra budget. The limiters run before authentication, so unauthenticated requests are limited too.
Polling a job's status has its own, higher budget: a client following a few jobs once a second is
not throttled by it, nor does it spend its budget for new generations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from litestar import Request
from litestar.config.app import AppConfig
from litestar.datastructures import Headers
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.redis import RedisStore
from litestar.types import ASGIApp, Receive, Scope, Send

from service.core.auth import bearer_token
from service.core.keys import Keys
from service.core.settings import Settings
from service.core.tokens import TokenVerifier

JOB_STATUS_PATH = "/video-gen/jobs/"
JOB_STATUS = f"^{JOB_STATUS_PATH}"
# A job's Server-Sent Events stream is one request for the job's whole life, not polling: not counted.
EVENTS = r"^/video-gen/jobs/[^/]+/events$"
NOT_LIMITED = ["^/health", "^/metrics", "^/schema", "^/docs-assets/", "^/console", EVENTS]
GENERAL_STORE, POLLING_STORE = "rate_limit", "rate_limit_polling"
CALLER = "video_gen.caller"  # scope key: the verified user id, set before the limiters run


class IdentifyCaller:
    """Verifies the Bearer token (if any) ahead of the limiters, which are synchronous; the
    authentication middleware verifies it again, from the verified-token cache
    (``service.core.token_cache``), and answers for a refused token itself."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app, self.verifier = app, verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            token = bearer_token(Headers.from_scope(scope).get("authorization"))
            if token is not None:
                try:
                    principal, _ = await self.verifier.principal(token)
                    scope[CALLER] = principal.user_id  # type: ignore[typeddict-unknown-key]
                except Exception:  # any refusal: known by its address; authentication answers for it
                    pass
        await self.app(scope, receive, send)


async def _is_job_status(request: Request[Any, Any, Any]) -> bool:
    # async: Litestar runs a sync check_throttle_handler in a thread, a thread hop per request
    path = request.url.path
    return path.startswith(JOB_STATUS_PATH) and not path.endswith("/events")


def identity(request: Request[Any, Any, Any]) -> str:
    """The rate limiter's key for a request: ``user:<id>`` (percent-encoded) or ``addr:<address>``."""
    user = request.scope.get(CALLER)  # type: ignore[call-overload]
    if isinstance(user, str):
        return f"user:{quote(user, safe='')}"
    return f"addr:{get_remote_address(request)}"


def rate_limits(
    settings: Settings, keys: Keys, verifier: TokenVerifier
) -> tuple[dict[str, RedisStore], Callable[[AppConfig], AppConfig]]:
    """The limiters' stores, and an ``on_app_init`` hook that puts the limiters in front of
    authentication (it must run after the JWT one, which inserts itself first)."""
    stores = {
        GENERAL_STORE: RedisStore.with_client(url=settings.redis_url, namespace=keys.rate_limit),
        POLLING_STORE: RedisStore.with_client(url=settings.redis_url, namespace=f"{keys.rate_limit}:polling"),
    }
    configs = []
    if settings.rate_limit_per_minute > 0:
        configs.append(
            RateLimitConfig(
                rate_limit=("minute", settings.rate_limit_per_minute),
                store=GENERAL_STORE,
                exclude=[*NOT_LIMITED, JOB_STATUS],
                identifier_for_request=identity,
            )
        )
    if settings.job_status_rate_limit_per_minute > 0:
        configs.append(
            RateLimitConfig(
                rate_limit=("minute", settings.job_status_rate_limit_per_minute),
                store=POLLING_STORE,
                check_throttle_handler=_is_job_status,
                identifier_for_request=identity,
            )
        )

    def install(app_config: AppConfig) -> AppConfig:
        if configs:
            limiters = [DefineMiddleware(IdentifyCaller, verifier=verifier), *(c.middleware for c in configs)]
            app_config.middleware[0:0] = limiters
        return app_config

    return stores, install
