"""Rate limits (Litestar's rate limiter on the Redis store), keyed on who is calling.

The identity is the verified user (a Bearer token whose signature checks: its ``sub``), else the
client's address (uvicorn's proxy-headers support rewrites it from ``X-Forwarded-For`` for the
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
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.redis import RedisStore

from service.core.auth import verified_subject
from service.core.keys import Keys
from service.core.settings import Settings

JOB_STATUS_PATH = "/video-gen/jobs/"
JOB_STATUS = f"^{JOB_STATUS_PATH}"
NOT_LIMITED = ["^/health", "^/metrics", "^/schema", "^/console"]
GENERAL_STORE, POLLING_STORE = "rate_limit", "rate_limit_polling"


def _is_job_status(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(JOB_STATUS_PATH)


def identity(secret: str) -> Callable[[Request[Any, Any, Any]], str]:
    """The rate limiter's key for a request: ``user:<sub>`` or ``addr:<client address>``."""

    def identify(request: Request[Any, Any, Any]) -> str:
        sub = verified_subject(request.headers.get("authorization"), secret)
        if sub is not None:
            return f"user:{quote(sub, safe='')}"
        return f"addr:{get_remote_address(request)}"

    return identify


def rate_limits(settings: Settings, keys: Keys) -> tuple[dict[str, RedisStore], Callable[[AppConfig], AppConfig]]:
    """The limiters' stores, and an ``on_app_init`` hook that puts the limiters in front of
    authentication (it must run after the JWT one, which inserts itself first)."""
    stores = {
        GENERAL_STORE: RedisStore.with_client(url=settings.redis_url, namespace=keys.rate_limit),
        POLLING_STORE: RedisStore.with_client(url=settings.redis_url, namespace=f"{keys.rate_limit}:polling"),
    }
    who = identity(settings.jwt_secret)
    configs = []
    if settings.rate_limit_per_minute > 0:
        configs.append(
            RateLimitConfig(
                rate_limit=("minute", settings.rate_limit_per_minute),
                store=GENERAL_STORE,
                exclude=[*NOT_LIMITED, JOB_STATUS],
                identifier_for_request=who,
            )
        )
    if settings.job_status_rate_limit_per_minute > 0:
        configs.append(
            RateLimitConfig(
                rate_limit=("minute", settings.job_status_rate_limit_per_minute),
                store=POLLING_STORE,
                check_throttle_handler=_is_job_status,
                identifier_for_request=who,
            )
        )

    def install(app_config: AppConfig) -> AppConfig:
        for config in reversed(configs):
            app_config.middleware.insert(0, config.middleware)
        return app_config

    return stores, install
