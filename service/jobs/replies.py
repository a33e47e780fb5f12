"""One reader per API process for every waiting request.

Each waiting request registers its job's reply stream and awaits a future; a single task issues
``XREAD BLOCK`` over all registered streams on one dedicated connection and resolves the futures.
When a request registers while the reader is blocked, the reader is woken with
``CLIENT UNBLOCK`` so the new stream joins the next read at once. Waiting therefore costs a dict
entry and a future, not a connection.

The reader survives Redis outages: a failed read is retried every half second, and the reader's
client id (which ``CLIENT UNBLOCK`` needs) is read again after a reconnection. ``release_all``
(graceful shutdown) answers every waiter with ``None`` at once: each request then answers 202
with its job id, and the job goes on.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.redis import BLOCK_MS
from service.jobs.messages import JobReply, decode_reply

log = structlog.get_logger(__name__)


class ReplyHub:
    def __init__(self, reader: Redis, control: Redis) -> None:
        self._reader = reader  # dedicated single connection: it blocks
        self._control = control  # pooled client used to wake the reader
        self._waiters: dict[str, list[asyncio.Future[JobReply | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._reader_id: int | None = None
        self._blocked = False
        self._wake_sent = False
        self._registered = asyncio.Event()
        self._closing = False

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # Redis down at start: the reader retries
            self._reader_id = await self._reader.client_id()
        self._task = asyncio.create_task(self._run(), name="reply-hub")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.release_all()
        self._waiters.clear()
        await self._reader.aclose()

    def release_all(self) -> None:
        """Stop waiting: every current and future ``wait`` returns None (shutdown)."""
        self._closing = True
        for futures in self._waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, stream: str, timeout: float) -> JobReply | None:
        """The reply on ``stream``, or None after ``timeout`` seconds (the job goes on)."""
        if self._closing:
            return None
        fut: asyncio.Future[JobReply | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(stream, []).append(fut)
        self._registered.set()
        await self._wake()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._forget(stream, fut)

    def _forget(self, stream: str, fut: asyncio.Future[JobReply | None]) -> None:
        futures = self._waiters.get(stream)
        if futures and fut in futures:
            futures.remove(fut)
            if not futures:
                del self._waiters[stream]

    async def _wake(self) -> None:
        # Coalesced: one CLIENT UNBLOCK per blocking read, however many requests arrive.
        if self._blocked and not self._wake_sent and self._reader_id is not None:
            self._wake_sent = True
            with contextlib.suppress(RedisError):
                await self._control.client_unblock(self._reader_id)

    async def _run(self) -> None:
        while True:
            if not self._waiters:
                self._registered.clear()
                await self._registered.wait()
                continue
            streams = {name: "0-0" for name in self._waiters}
            try:
                if self._reader_id is None:  # reconnected: a new connection has a new client id
                    self._reader_id = await self._reader.client_id()
                self._blocked, self._wake_sent = True, False
                result = await self._reader.xread(streams, count=1, block=BLOCK_MS)
            except (RedisError, OSError) as exc:
                log.warning("reply_hub.read_failed", error=str(exc) or type(exc).__name__)
                self._blocked, self._reader_id = False, None
                await asyncio.sleep(0.5)
                continue
            self._blocked = False
            for name, entries in result or []:
                self._deliver(name.decode() if isinstance(name, bytes) else name, entries)

    def _deliver(self, stream: str, entries: list) -> None:
        if not entries:
            return
        reply = decode_reply(entries[0][1])
        for fut in self._waiters.pop(stream, []):
            if not fut.done():
                fut.set_result(reply)
