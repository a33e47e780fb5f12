"""One reader of job events per API process, for every Server-Sent Events stream it serves.

Workers (and cancels) add each change of a job (charged, progress, done) to the events stream. A
single task of the API process reads it with ``XREAD BLOCK`` on one dedicated connection and hands
each event to the streams following that job: a stream costs a queue, never a Redis connection,
so thousands of open streams cost the same handful of connections as none (the same fan-out as
``ReplyInbox``). Events of jobs nobody here follows are dropped on reading.
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


class JobWatchers:
    def __init__(self, stream: JobStream, reader: Redis) -> None:
        self.stream, self._reader = stream, reader  # the reader is a dedicated connection: it blocks
        self._watching: dict[str, set[asyncio.Queue[JobEvent]]] = {}
        self._task: asyncio.Task[None] | None = None

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
