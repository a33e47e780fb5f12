"""Stopping the model run of a job that was cancelled while a worker ran it.

The worker learns of a cancel from the cancels stream (``JobStream.read_cancels``), after the
record already says CANCELLED. ``Stops`` knows the jobs this process is running (from the start of
each delivery, before its first database read, so a notice is never missed for a job whose record
it read as RUNNING) and cancels the asyncio task of the one's model run; the task then ends it as
the record says. A notice for a job this process is not running is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The job was cancelled: its model run was stopped (or never started)."""


class Stops:
    def __init__(self) -> None:
        self._live: dict[str, asyncio.Task[Any] | None] = {}  # job id -> its model run, while one runs
        self._requested: set[str] = set()

    @contextlib.contextmanager
    def tracking(self, job_id: str) -> Iterator[None]:
        """While the body runs, a cancel of ``job_id`` is remembered (and stops its model run)."""
        self._live[job_id] = None
        try:
            yield
        finally:
            self._live.pop(job_id, None)
            self._requested.discard(job_id)

    def request(self, job_id: str) -> bool:
        """Stop ``job_id``'s model run; False when this process is not running the job."""
        if job_id not in self._live:
            return False
        self._requested.add(job_id)
        run = self._live[job_id]
        if run is not None:
            run.cancel()
        return True

    def requested(self, job_id: str) -> bool:
        return job_id in self._requested

    async def run(self, job_id: str, work: Coroutine[Any, Any, T]) -> T:
        """Await ``work`` (the model run); ``Stopped`` when the job is cancelled before or while it runs.

        Any other cancellation (a timeout, the worker's shutdown) propagates as it came.
        """
        if job_id in self._requested:
            work.close()
            raise Stopped(job_id)
        run = asyncio.ensure_future(work)
        if job_id in self._live:
            self._live[job_id] = run
        try:
            return await run
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if job_id in self._requested and (current is None or not current.cancelling()):
                raise Stopped(job_id) from None
            raise
        finally:
            if job_id in self._live:
                self._live[job_id] = None
