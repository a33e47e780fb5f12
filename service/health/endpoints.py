"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from redis.asyncio import Redis

from service.core.db import current_engine


class Health(msgspec.Struct):
    status: str
    redis: str = "unknown"
    database: str = "unknown"


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="The process is up")
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Redis and the database answer")
    async def ready(self, redis: NamedDependency[Redis]) -> Response[Health]:
        health = Health(status="ok")
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
