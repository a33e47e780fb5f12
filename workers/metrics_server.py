"""A worker's own HTTP endpoint on ``HOST:METRICS_PORT``: ``/metrics`` and ``/health``.

- ``GET /metrics``: this process's Prometheus text (prometheus_client's registry: the jobs it
  ran, their times, provider calls and errors, credits). Behind ``METRICS_TOKEN`` when set.
- ``GET /health``: 200 while the scheduling loop runs, 503 once it has stopped (a probe for
  compose and Kubernetes; it needs no token and says nothing else).

prometheus_client's own ``start_http_server`` runs a thread and takes no token; this is a few
lines of asyncio on the worker's loop instead. One request per connection, GET only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from service.core import metrics

MAX_HEADER_BYTES = 16 * 1024
READ_TIMEOUT = 5.0


async def start_metrics_server(host: str, port: int, *, token: str | None, alive: Callable[[], bool]) -> asyncio.Server:
    """Listen on ``host:port``; close the returned server to stop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, content_type, body = _answer(head, token, alive)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            status, content_type, body = "400 Bad Request", "text/plain", b"bad request\n"
        with contextlib.suppress(ConnectionError):
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES)


def _answer(head: bytes, token: str | None, alive: Callable[[], bool]) -> tuple[str, str, bytes]:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    path = rest.partition(" ")[0].partition("?")[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
    if path == "/health":
        return ("200 OK", "application/json", b'{"status":"ok"}') if alive() else _unavailable()
    if path != "/metrics":
        return "404 Not Found", "text/plain", b"not found\n"
    if not metrics.authorized(headers.get("authorization"), token):
        return "401 Unauthorized", "text/plain", b"a valid metrics token is required\n"
    return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)


def _unavailable() -> tuple[str, str, bytes]:
    return "503 Service Unavailable", "application/json", b'{"status":"stopped"}'
