"""Litestar's Prometheus middleware for less per request: the same metrics, labels and exclusions.

A process holds thousands of requests while they wait for their jobs, each with this middleware's
state alive: Litestar's builds a second ``Request``, two label dicts, a span dict and a
``functools.wraps`` closure per request. This one keeps two label tuples and one small send
wrapper. Configurations it does not cover (extra labels, exemplars, excluded methods, ungrouped
paths) go to Litestar's own.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.plugins.prometheus import PrometheusMiddleware
from litestar.types import Message, Receive, Scope, Send

# The label names, in Litestar's order (its metrics are created with these keys on first use).
LABELS: dict[str, Any] = {"method": "", "path": "", "status_code": 200, "app_name": ""}


class _Observed:
    """The ``send`` that notes the response's status and when its body was sent."""

    __slots__ = ("ended", "send", "status")

    def __init__(self, send: Send) -> None:
        self.send, self.status, self.ended = send, 200, 0.0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.ended = time.perf_counter()
        await self.send(message)


class LeanPrometheusMiddleware(PrometheusMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self._config
        if scope["type"] != "http" or config.labels or config.exemplars or config.excluded_http_methods:
            await super().__call__(scope, receive, send)
            return
        if not config.group_path:
            await super().__call__(scope, receive, send)
            return
        method, path, app = scope["method"], scope["path_template"], config.app_name  # type: ignore[typeddict-item]
        started, observed = time.perf_counter(), _Observed(send)
        in_progress = self.requests_in_progress(LABELS).labels(method, path, 200, app)
        in_progress.inc()
        try:
            await self.app(scope, receive, observed)
        finally:
            in_progress.dec()
            values = (method, path, observed.status, app)
            if observed.status >= 500:
                self.requests_error_count(LABELS).labels(*values).inc()
            self.request_count(LABELS).labels(*values).inc()
            duration = observed.ended - started if observed.ended else 0
            self.request_time(LABELS).labels(*values).observe(duration)
