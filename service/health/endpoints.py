"""Liveness and readiness probes.

``/health/ready`` answers 200 when Redis and the database answer, the storage's bucket (or
directory) can be reached, at least one installed model can run here, and (with ``JWT_JWKS_URL``)
the identity provider's signing keys are loaded; else 503. The body says which part is
``unavailable``, never why: exception text can carry hosts, users and paths, so the reason goes to
the log (``health.unavailable``), not to the public body. Each check is bounded by
``CHECK_SECONDS`` so that a hung dependency fails the probe instead of hanging it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from redis.asyncio import Redis

from models_registry.registry import ModelRegistry
from service.core.db import current_engine
from service.core.tokens import TokenVerifier
from service.storage.base import Storage

log = structlog.get_logger(__name__)
CHECK_SECONDS = 3.0
OK, UNAVAILABLE = "ok", "unavailable"


class Health(msgspec.Struct, rename="camel"):
    status: str
    redis: str = "unknown"
    database: str = "unknown"
    storage: str = "unknown"
    models: str = "unknown"
    """``ok`` when at least one installed model can run here."""
    usable_models: list[str] = []
    keys: str | msgspec.UnsetType = msgspec.UNSET
    """With ``JWT_JWKS_URL`` only: the identity provider's signing keys, ``ok`` once loaded."""


async def _check(part: str, probe: Callable[[], Awaitable[object]]) -> str:
    try:
        await asyncio.wait_for(probe(), CHECK_SECONDS)
        return OK
    except Exception as exc:
        log.warning("health.unavailable", part=part, error=str(exc) or type(exc).__name__)
        return UNAVAILABLE


def _keys(verifier: TokenVerifier) -> str | msgspec.UnsetType:
    if verifier.jwks is None:
        return msgspec.UNSET
    if verifier.ready:
        return OK
    log.warning("health.unavailable", part="keys", error=verifier.jwks.error or "fetching")
    return UNAVAILABLE


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="The process is up")
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Redis, the database and the storage answer, a model can run, token keys are loaded")
    async def ready(
        self,
        redis: NamedDependency[Redis],
        storage: NamedDependency[Storage],
        registry: NamedDependency[ModelRegistry],
        verifier: NamedDependency[TokenVerifier],
    ) -> Response[Health]:
        redis_state, database, store = await asyncio.gather(
            _check("redis", redis.ping),
            _check("database", lambda: current_engine().run_ddl("SELECT 1")),
            _check("storage", storage.check),
        )
        usable = [name for name in registry.names() if registry.unavailable_reason(name) is None]
        health = Health(
            status=OK,
            redis=redis_state,
            database=database,
            storage=store,
            models=OK if usable else UNAVAILABLE,
            usable_models=usable,
            keys=_keys(verifier),
        )
        if UNAVAILABLE in (health.redis, health.database, health.storage, health.models, health.keys):
            health.status = UNAVAILABLE
        return Response(health, status_code=200 if health.status == OK else 503)
