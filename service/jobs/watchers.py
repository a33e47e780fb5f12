"""One reader of job events per API process, for every Server-Sent Events stream it serves.

Workers (and cancels) add each change of a job (charged, progress, done) to the events stream. A
single task of the API process reads it with ``XREAD BLOCK`` on one dedicated connection and hands
each event to the streams following that job: a stream costs a queue, never a Redis connection,
so thousands of open streams cost the same handful of connections as none (the same fan-out as
``ReplyInbox``). Events of jobs nobody here follows are dropped on reading.

While nobody here follows a job, nothing is read (workers write two events a job, which every API
process would otherwise fetch and decode): the reader only keeps its position fresh, every
``IDLE_REFRESH`` seconds, and the first stream to follow a job wakes it. A position is kept only
if no stream began following while Redis answered, so the reader always resumes from before every
follower began: no change slips in between, as when it reads all the time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import structlog
from redis.asyncio import Redis

from service.core.redis import BLOCK_MS
from service.core.tasks import cancel_until_done
from service.jobs.messages import JobEvent
from service.jobs.stream import JobStream

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 5.0  # the most ``stop`` waits for the reader to end
QUEUE_SIZE = 64  # events one stream may lag behind; past it the oldest are dropped (the latest state wins)
IDLE_REFRESH = 5.0  # seconds between refreshes of the position while nobody follows a job


class JobWatchers:
    def __init__(self, stream: JobStream, reader: Redis) -> None:
        self.stream, self._reader = stream, reader  # the reader is a dedicated connection: it blocks
        self._watching: dict[str, set[asyncio.Queue[JobEvent]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._followed = asyncio.Event()  # set when a stream begins following a job

    @property
    def watching(self) -> int:
        return sum(len(queues) for queues in self._watching.values())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="job-events")

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the reader (even when redis-py swallows its cancellation) and close its connection."""
        if self._task is not None:
            await cancel_until_done([self._task], timeout, owner="job_watchers")
            if self._task.done():
                await asyncio.gather(self._task, return_exceptions=True)
        await self._reader.aclose()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Queue[JobEvent]]:
        """The events of ``job_id`` from now on, while the body runs."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(QUEUE_SIZE)
        self._watching.setdefault(job_id, set()).add(queue)
        self._followed.set()
        try:
            yield queue
        finally:
            queues = self._watching.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._watching[job_id]

    async def _read(self) -> None:
        after: str | None = None
        while True:
            try:
                if not self._watching:
                    after = await self._idle(after)
                    continue
                if after is None:
                    after = await self.stream.events_tail()
                after, events = await self.stream.read_events(self._reader, after, BLOCK_MS)
            except Exception as exc:  # the reader must outlive anything; streams re-read the job meanwhile
                log.warning("job_events.read_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for event in events:
                for queue in self._watching.get(event.job_id, ()):
                    if queue.full():
                        queue.get_nowait()
                    queue.put_nowait(event)

    async def _idle(self, after: str | None) -> str | None:
        """Wait, reading nothing, until a stream follows a job (at most ``IDLE_REFRESH``); the
        position to read from then: the tail as it was before the wait, unless a stream began
        following while Redis answered (then the older position stands)."""
        self._followed.clear()
        tail = await self.stream.events_tail()
        if self._watching:
            return after
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._followed.wait(), IDLE_REFRESH)
        return tail
