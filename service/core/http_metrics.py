"""Litestar's Prometheus middleware for less per request: the same metrics, labels and exclusions.

A process holds thousands of requests while they wait for their jobs, each with this middleware's
state alive: Litestar's builds a second ``Request``, two label dicts, a span dict and a
``functools.wraps`` closure per request, under a coroutine of its exclusion wrapper. This one
keeps two label tuples and one small send wrapper, and checks exclusions without a coroutine of
its own (``__call__`` hands back the coroutine that answers). What it does not cover (other scope
types, mounts, opt-out keys, extra labels, exemplars, excluded methods, ungrouped paths) goes to
Litestar's own, which it holds for its metrics too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

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


class LeanPrometheusMiddleware:
    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        self.app, self.litestar = app, PrometheusMiddleware(app, config)
        self.covered = config.group_path and not (config.labels or config.exemplars or config.excluded_http_methods)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        handler = scope.get("route_handler")
        special = getattr(handler, "is_mount", False) or self.litestar.exclude_opt_key
        if scope["type"] != "http" or special or not self.covered:
            return self.litestar(scope, receive, send)
        excluded = self.litestar.exclude_pattern
        if excluded is not None and excluded.findall(scope["path"]):
            return self.app(scope, receive, send)
        return self._observe(scope, receive, send)

    async def _observe(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics, app = self.litestar, self.litestar._config.app_name
        method, path = scope["method"], scope["path_template"]  # type: ignore[typeddict-item]
        started, observed = time.perf_counter(), _Observed(send)
        in_progress = metrics.requests_in_progress(LABELS).labels(method, path, 200, app)
        in_progress.inc()
        try:
            await self.app(scope, receive, observed)
        finally:
            in_progress.dec()
            values = (method, path, observed.status, app)
            if observed.status >= 500:
                metrics.requests_error_count(LABELS).labels(*values).inc()
            metrics.request_count(LABELS).labels(*values).inc()
            duration = observed.ended - started if observed.ended else 0
            metrics.request_time(LABELS).labels(*values).observe(duration)
