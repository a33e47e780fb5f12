"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from redis.asyncio import Redis

from service.core.db import current_engine
from service.core.tokens import TokenVerifier


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    redis: str = "unknown"
    database: str = "unknown"
    keys: str | None = None  # with JWT_JWKS_URL: the identity provider's signing keys, "ok" once loaded


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="The process is up")
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Redis and the database answer, and the token keys are loaded")
    async def ready(self, redis: NamedDependency[Redis], verifier: NamedDependency[TokenVerifier]) -> Response[Health]:
        health = Health(status="ok")
        if verifier.jwks is not None:
            health.keys = "ok" if verifier.ready else f"not loaded: {verifier.jwks.error or 'fetching'}"
            health.status = "ok" if verifier.ready else "unavailable"
        try:
            await redis.ping()
            health.redis = "ok"
        except Exception as exc:
            health.redis, health.status = f"error: {exc}", "unavailable"
        try:
            await current_engine().run_ddl("SELECT 1")
            health.database = "ok"
        except Exception as exc:
            health.database, health.status = f"error: {exc}", "unavailable"
        return Response(health, status_code=200 if health.status == "ok" else 503)
