"""A webhook receiver on loopback that verifies every request with the ``standardwebhooks``
library, as a customer's receiver would, and answers as a test scripts it.

``answers`` is consumed one per request: an HTTP status, ``"hang"`` (never answer), or
``(status, headers)``; when it runs out, ``then`` answers. A request whose signature does not
verify is answered 401, as a careful receiver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Answer = int | str | tuple[int, dict[str, str]]


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any = None
    """The verified, parsed payload; None when verification failed."""
    rejected: str | None = None
    """Why verification failed."""


@dataclass
class Receiver:
    secret: str
    answers: list[Answer] = field(default_factory=list)
    then: Answer = 204
    body: str = "ok"
    """What every answer carries."""
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        """Listen on loopback; the base URL (``https`` with ``tls``)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self._handlers: set[asyncio.Task[None]] = set()
        return f"{'https' if tls else 'http'}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` requests, once they came (``timeout`` is a safety net)."""
        async with asyncio.timeout(timeout):
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]

    @property
    def verified(self) -> list[Received]:
        return [r for r in self.received if r.payload is not None]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            got = Received(at=time.time(), path=path, headers=headers, body=body)
            try:
                got.payload = Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as exc:
                got.rejected = str(exc)
            answer = self.answers.pop(0) if self.answers else self.then
            async with self.arrived:
                self.received.append(got)
                self.arrived.notify_all()
            if answer == "hang":
                await asyncio.Event().wait()
            status, extra = answer if isinstance(answer, tuple) else (answer, {})
            if got.rejected:
                status = 401
            data = self.body.encode()
            out = f"HTTP/1.1 {status} X\r\ncontent-length: {len(data)}\r\nconnection: close\r\n"
            out += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(out.encode() + b"\r\n" + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)
