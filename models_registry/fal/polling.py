"""Waiting on a fal request: when to poll its status, and polling it until it completes.

fal's queue API answers a status request at once, so waiting is polling. The waits grow and are
jittered so that a long generation costs few polls and jobs submitted (or resumed) together do not
poll together."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from fal_client import AsyncRequestHandle, Completed

from models_registry.base import GenerationJob, Progress
from models_registry.errors import GenerationFailed
from models_registry.fal.queue import progress_of
from models_registry.fal.settings import FalSettings

T = TypeVar("T")

POLL_BACKOFF = 1.5  # each status poll of a running request waits this much longer than the last ...
POLL_JITTER = 0.2  # ... give or take this fraction


class FalCall(Protocol):
    """One call to fal's queue API with its bounds and retries (``FalVideoModel._retry``)."""

    def __call__(self, operation: Callable[[], Awaitable[T]], what: str) -> Awaitable[T]: ...


def poll_delays(first: float, cap: float) -> Iterator[float]:
    """The waits between status polls: ``first``, then 1.5 times longer each time up to ``cap``,
    each give or take 20 %. A long generation is polled less often, and jobs submitted together do
    not poll together (1,000 in flight cost about 130 polls a second: the README's benchmarks)."""
    interval = first
    while True:
        yield interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        interval = min(interval * POLL_BACKOFF, max(cap, first))


def resume_delay(first: float, cap: float) -> float:
    """How long a resumed request waits before its first poll. A worker that died leaves hundreds
    of requests, all resumed at once by another: their first polls are spread over the longest poll
    interval instead of being sent together."""
    return random.uniform(0, min(max(cap, first), 4 * first))


async def wait_for_result(handle: AsyncRequestHandle, job: GenerationJob, settings: FalSettings, call: FalCall) -> Any:
    """Poll until COMPLETED, reporting progress, then fetch the result; a completed request with
    an error fails."""
    seen_logs, last = 0, None
    delays = poll_delays(settings.poll_seconds, settings.poll_max_seconds)
    while True:
        status = await call(lambda: handle.status(with_logs=True), "polling fal.ai")
        if isinstance(status, Completed):
            break
        progress, seen_logs = progress_of(status, seen_logs)
        if progress is not None and progress != last:
            await job.report_progress(progress)
            last = progress
        await asyncio.sleep(next(delays))
    if status.error:
        kind = f" ({status.error_type})" if status.error_type else ""
        raise GenerationFailed(f"fal request {handle.request_id} failed{kind}: {status.error}")
    await job.report_progress(Progress("Downloading the video", fraction=0.9))
    return await call(lambda: handle.get(interval=settings.poll_seconds), "fetching the result")
