"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get

from service.ledger.tables import Account


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
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Health]:
        health = Health(status="ok")
        try:
            await request.app.state.redis.ping()
            health.redis = "ok"
        except Exception as exc:
            health.redis, health.status = f"error: {exc}", "unavailable"
        try:
            await Account.count()
            health.database = "ok"
        except Exception as exc:
            health.database, health.status = f"error: {exc}", "unavailable"
        return Response(health, status_code=200 if health.status == "ok" else 503)
