"""The worker's writes to Redis at the end of a job, grouped: one round trip for every job that
finished while the previous one was in flight (a group commit).

A job's end is four writes: its reply (SET NX with an expiry), the reply added to the waiting
process's inbox, its ``done`` event, and the acknowledgement. Written one job at a time that is
four commands per job; grouped, the replies of one inbox go in one entry (its fields named by job
id), the events in one entry, and the acknowledgements in one XACK per jobs stream, so a worker finishing jobs
at a high rate pays about one command per job plus three per round trip. A job's ``running``
and progress events join the same group.

Nothing waits a fixed time: the first write starts a round trip on the loop's next turn, and
writes that arrive while it is in flight go together in the next. Each caller awaits the round
trip that carries its writes and gets its error if it failed, as it would alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.jobs.messages import EntryRef, JobMessage


@dataclass
class Batch:
    """The writes of one round trip, in the order they were asked for."""

    replies: list[tuple[JobMessage, bytes]] = field(default_factory=list)
    """A job and its encoded reply: its reply key, Idempotency-Key copy and inbox entry."""
    events: list[bytes] = field(default_factory=list)
    """Encoded job events for the events stream (``running``, progress, ``done``)."""
    acks: list[EntryRef] = field(default_factory=list)
    """Jobs stream entries to acknowledge, after their replies are written (one XACK per stream)."""


class Outbox:
    """Groups writes into batches and writes each batch with ``write`` (one pipeline)."""

    def __init__(self, write: Callable[[Batch], Awaitable[None]]) -> None:
        self._write = write
        self._open: Batch | None = None
        self._done: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def add(self, fill: Callable[[Batch], None]) -> None:
        """Put writes into the next batch (``fill`` appends to it) and wait until it is written."""
        await asyncio.shield(self.post(fill))  # a cancelled caller does not cancel the others' writes

    def post(self, fill: Callable[[Batch], None]) -> asyncio.Future[None]:
        """Put writes into the next batch without waiting: the future of its round trip (its error
        is marked seen; ``add``'s callers get it). Written before anything added later."""
        if self._open is None or self._done is None:
            self._open, self._done = Batch(), asyncio.get_running_loop().create_future()
        fill(self._open)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="job-outbox")
        return self._done

    async def _drain(self) -> None:
        while self._open is not None and self._done is not None:
            batch, done = self._open, self._done
            self._open = self._done = None
            try:
                await self._write(batch)
            except Exception as exc:
                _fail(done, exc)
            except BaseException as exc:  # cancelled (the loop is closing): nobody may wait forever
                _fail(done, exc)
                if self._done is not None:
                    _fail(self._done, exc)
                self._open = self._done = None
                raise
            else:
                done.set_result(None)


def _fail(done: asyncio.Future[None], exc: BaseException) -> None:
    if isinstance(exc, asyncio.CancelledError):
        done.cancel()
        return
    done.set_exception(exc)
    done.add_done_callback(_retrieved)


def _retrieved(fut: asyncio.Future[None]) -> None:
    """Mark the error seen: every caller whose writes failed got it; none left is not a leak."""
    fut.exception()
