"""A job's life as Server-Sent Events: ``GET /video-gen/jobs/{id}/events``.

The stream sends the job's view at once (``event: state``), then one event per change: ``status``
when it starts running, ``progress`` for each progress report (stage message, fraction, the
provider's queue position), and finally ``done`` with the same body as ``GET /video-gen/jobs/{id}``
(``succeeded``, ``failed`` or ``cancelled``), and closes. Every event's data is the job view, so a
client needs one parser. Ids are the events stream's ids (increasing); a client reconnecting with
``Last-Event-ID`` gets the current state first, which is everything still relevant (older progress
is superseded), then the changes after it.

Changes come from this process's ``JobWatchers`` (one Redis reader for every stream). A stream
also re-reads the job every ``REREAD_SECONDS`` in case an event was lost (a Redis restart), sends
a comment as a keep-alive, and ends when the server shuts down (the client reconnects elsewhere).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import msgspec
from litestar.response import ServerSentEventMessage

from service.core.auth import Principal
from service.generations.schemas import JobProgress, JobView
from service.generations.status import JOB_TERMINAL, JobStatus
from service.generations.views import describe_job
from service.jobs.stream import JobStream
from service.jobs.watchers import JobWatchers
from service.storage.base import Storage

REREAD_SECONDS = 15.0
TICK_SECONDS = 1.0  # how often a quiet stream checks whether the server is shutting down

_encoder = msgspec.json.Encoder()


def _message(view: JobView, event: str, event_id: str | None) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=_encoder.encode(view).decode(), event=event, id=event_id)


def _seen(view: JobView) -> tuple[str, JobProgress | None]:
    return view.status, view.progress


async def job_events(
    job_id: str,
    principal: Principal,
    *,
    stream: JobStream,
    storage: Storage,
    watchers: JobWatchers,
    download_seconds: int,
    closing: Callable[[], bool],
) -> AsyncIterator[ServerSentEventMessage]:
    """The job's events (see the module's docstring). The caller checks first that the job exists
    and is the caller's (``describe_job``), so that anything else is a plain 404, not a stream."""

    async def view() -> JobView:
        return await describe_job(job_id, principal, stream=stream, storage=storage, download_seconds=download_seconds)

    with watchers.watch(job_id) as queue:  # before reading the state: no change slips in between
        current, last_id = await view(), None
        yield _message(current, "done" if current.status in JOB_TERMINAL else "state", last_id)
        sent, reread = _seen(current), time.monotonic() + REREAD_SECONDS
        while current.status not in JOB_TERMINAL and not closing():
            try:
                event = await asyncio.wait_for(queue.get(), TICK_SECONDS)
            except TimeoutError:
                if time.monotonic() < reread:
                    continue
                reread, event = time.monotonic() + REREAD_SECONDS, None
            if event is None or event.status == "done" or current.status is not JobStatus.RUNNING:
                current = await view()
            elif event.progress is not None:
                current.progress = msgspec.convert(event.progress, JobProgress)
            if event is not None:
                last_id = event.id
            name = "done" if current.status in JOB_TERMINAL else "status" if current.status != sent[0] else "progress"
            if _seen(current) != sent or name == "done":
                yield _message(current, name, last_id)
                sent = _seen(current)
            elif event is None:
                yield ServerSentEventMessage(comment="keep-alive")
