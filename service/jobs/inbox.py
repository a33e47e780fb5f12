"""One inbox per API process for every request it holds open.

A waiting request registers its job id (before the job is queued, so no reply can slip past) and
awaits a future. The job message names this process's inbox; the worker that finishes the job
writes its reply and adds it to the inbox. A single task reads the inbox with ``XREAD BLOCK`` on
one dedicated connection and resolves the futures: the stream list it sends never changes, no
client is ever unblocked, and a waiting request costs a dict entry and a future, not a connection.

A reply for a request that stopped waiting (it answered 202) is dropped here; the job endpoint
and Idempotency-Key replays read the job's own reply key. The inbox outlives a dead process by
``INBOX_TTL_SECONDS`` and is never recreated by workers.

The task also keeps the process's view of the backlog (``JobStream.backlog``, once a second) so
that submissions check it without a round trip. ``release_all`` (graceful shutdown) answers
every waiter with None at once: each request then answers 202 with its job id.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import socket
import time
import uuid

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.redis import BLOCK_MS
from service.core.tasks import cancel_until_done
from service.jobs.messages import JobReply
from service.jobs.stream import JobStream

log = structlog.get_logger(__name__)

BACKLOG_EVERY = 1.0  # seconds between reads of the backlog
KEEP_EVERY = 60.0  # seconds between renewals of the inbox's expiry
STOP_TIMEOUT = 5.0  # the most ``stop`` waits for its tasks to end


# The context the wait timers run in: theirs is a plain set_result, which needs no request's context.
_TIMERS = contextvars.Context()


def _time_out(fut: asyncio.Future[JobReply | None]) -> None:
    if not fut.done():
        fut.set_result(None)


def process_name() -> str:
    """A name no other process uses, now or later: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ReplyInbox:
    def __init__(self, stream: JobStream, reader: Redis, name: str | None = None, capacity: int = 1_000_000) -> None:
        self.stream, self._reader = stream, reader  # the reader is a dedicated connection: it blocks
        self.capacity = capacity  # the most requests this process lets wait (``core.limits``)
        self.name = stream.keys.inbox(name or process_name())
        self.backlog = 0
        self._waiters: dict[str, asyncio.Future[JobReply | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def closing(self) -> bool:
        """True once the process began shutting down: no new job may be submitted."""
        return self._closing

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # Redis down at start: the reader retries
            await self.stream.open_inbox(self.name)
        self._tasks = [
            asyncio.create_task(self._read(), name="reply-inbox"),
            asyncio.create_task(self._upkeep(), name="reply-inbox-upkeep"),
        ]

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the reader and upkeep tasks, answer every waiter with None, close the reader.

        A cancellation can be swallowed inside redis-py (a command cancelled while its connection
        is being released or reconnected returns or raises its own error instead), and the loop
        then goes on; so the tasks are cancelled again until they end, for at most ``timeout``.
        """
        await cancel_until_done(self._tasks, timeout, owner="reply_inbox")
        await asyncio.gather(*(t for t in self._tasks if t.done()), return_exceptions=True)
        self._tasks = []
        self.release_all()
        await self._reader.aclose()

    def expect(self, job_id: str) -> asyncio.Future[JobReply | None]:
        """Register a waiter for ``job_id``'s reply; call before the job can finish."""
        fut: asyncio.Future[JobReply | None] = asyncio.get_running_loop().create_future()
        if self._closing:
            fut.set_result(None)
        else:
            self._waiters[job_id] = fut
        return fut

    async def wait(self, job_id: str, fut: asyncio.Future[JobReply | None], timeout: float) -> JobReply | None:
        """The reply ``fut`` was registered for, or None after ``timeout`` seconds (the job goes on).

        One timer that answers None, rather than ``wait_for(shield(fut))``: a waiting request then
        holds no extra coroutine, futures or done-callbacks (and no copy of its context), which is
        most of what thousands of them cost beside the request itself.
        """
        loop = asyncio.get_running_loop()
        timer = loop.call_at(loop.time() + timeout, _time_out, fut, context=_TIMERS)
        try:
            return await fut
        finally:
            timer.cancel()
            self.forget(job_id, fut)

    def forget(self, job_id: str, fut: asyncio.Future[JobReply | None]) -> None:
        if self._waiters.get(job_id) is fut:
            del self._waiters[job_id]

    def release_all(self) -> None:
        """Stop waiting: every current and future wait answers None (shutdown)."""
        if not self._closing:
            log.info("api.draining", waiting=self.waiting)
        self._closing = True
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(None)

    async def _read(self) -> None:
        after = "0-0"  # the inbox is this process's own, new: everything in it is ours
        while True:
            try:
                after, replies = await self.stream.read_inbox(self._reader, self.name, after, BLOCK_MS)
            except Exception as exc:  # the reader must outlive anything: every waiting request needs it
                log.warning("reply_inbox.read_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
                with contextlib.suppress(RedisError, OSError):
                    await self.stream.keep_inbox(self.name)  # Redis may have restarted without it
                continue
            for reply in replies:
                fut = self._waiters.pop(reply.job_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)

    async def _upkeep(self) -> None:
        kept = time.monotonic()
        while True:
            await asyncio.sleep(BACKLOG_EVERY)
            try:
                self.backlog = await self.stream.backlog()
                if time.monotonic() - kept >= KEEP_EVERY:
                    await self.stream.keep_inbox(self.name)
                    kept = time.monotonic()
            except (RedisError, OSError) as exc:
                log.debug("reply_inbox.upkeep_failed", error=str(exc) or type(exc).__name__)
