"""The API's ``/metrics``: Prometheus text from prometheus_client's registry (Litestar's HTTP
metrics, ours in ``service.core.metrics``), with the queue's state read from Redis at each scrape.

With ``METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Controller, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.exceptions import RedisError

from service.core import metrics
from service.jobs.stream import JobStream
from service.webhooks.queue import WebhookQueue

log = structlog.get_logger(__name__)


async def read_queue(stream: JobStream) -> None:
    """Set the ``video_gen_queue_*`` gauges from Redis; on an outage they keep their last values."""
    try:
        counts = await stream.queue_counts()
    except (RedisError, OSError) as exc:
        log.warning("metrics.queue_unreadable", error=str(exc) or type(exc).__name__)
        return
    metrics.QUEUE_WAITING.set(counts.waiting)
    metrics.QUEUE_RUNNING.set(counts.running)
    metrics.DEAD_LETTERS.set(counts.dead_letters)
    metrics.QUEUE_OLDEST_WAITING_SECONDS.set(counts.oldest_waiting_seconds)


async def read_webhooks(queue: WebhookQueue) -> None:
    """Set ``video_gen_webhooks_pending`` from Redis; on an outage it keeps its last value."""
    try:
        metrics.WEBHOOKS_PENDING.set(await queue.due())
    except (RedisError, OSError) as exc:
        log.warning("metrics.webhooks_unreadable", error=str(exc) or type(exc).__name__)


def metrics_controller(token: str | None) -> type[Controller]:
    """``GET /metrics``, behind ``METRICS_TOKEN`` when it is set."""

    def token_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not metrics.authorized(connection.headers.get("authorization"), token):
            raise NotAuthorizedException("A valid metrics token is required")

    class MetricsController(Controller):
        path = "/metrics"
        tags = ["health"]
        guards = [token_guard]

        @get(
            summary="Prometheus metrics (the HTTP API's, the jobs', the queue's, the webhooks')",
            media_type=CONTENT_TYPE_LATEST,
        )
        async def metrics(
            self, stream: NamedDependency[JobStream], webhooks: NamedDependency[WebhookQueue]
        ) -> Response[bytes]:
            await read_queue(stream)
            await read_webhooks(webhooks)
            return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return MetricsController
