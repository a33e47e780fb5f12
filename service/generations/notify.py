"""Telling a job's subscriber how it ended: the webhook event of a finished job, queued.

The worker calls ``job_ended`` with the job's reply before it writes that reply and acknowledges
the job. Redis and the database share no transaction, so this is what makes the event durable:
a worker that dies after the outcome is recorded and before the event is queued leaves the job
unacknowledged; its redelivery answers from the terminal record and queues the same event (the
same ``webhook-id``, derived from the job and the event); queueing one twice keeps the first.

``job_started`` (``generation.started``, for clients that asked for it by name) is called by the
task once the job is charged, and again by any later delivery that resumes it: the same event,
kept once. Events are separate deliveries: a receiver may get ``started`` after the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from service.core.pagination import iso
from service.generations.records import GenerationRecord
from service.generations.schemas import JobView, WebhookPayload
from service.generations.views import outcome_view, record_view
from service.jobs.messages import JobMessage, JobReply
from service.storage.base import Storage
from service.webhooks.messages import DEFAULT_EVENTS, EVENTS, WebhookDelivery, WebhookEvent, delivery_id
from service.webhooks.queue import WebhookQueue

_encoder = msgspec.json.Encoder()


def event_of(view: JobView) -> WebhookEvent | None:
    """The event a terminal job's status names (``generation.<status>``); None while it runs."""
    name = f"generation.{view.status.value}"
    return WebhookEvent(name) if name in EVENTS else None


class WebhookNotifier:
    """One per worker process; ``on_queued`` wakes that process's dispatcher."""

    def __init__(
        self, queue: WebhookQueue, storage: Storage, *, download_seconds: int, on_queued: Callable[[], None]
    ) -> None:
        self.queue, self.storage, self.download_seconds, self.on_queued = queue, storage, download_seconds, on_queued

    async def job_ended(self, job: JobMessage, reply: JobReply) -> None:
        """Queue the event ``reply`` ends ``job`` with, if its client subscribed to it."""
        if not job.webhook_url:
            return
        view = await outcome_view(job, reply, storage=self.storage, download_seconds=self.download_seconds)
        event = event_of(view)
        if event is not None and event.value in (job.webhook_events or DEFAULT_EVENTS):
            await self._queue(job, event, view)

    async def job_started(self, job: JobMessage, record: GenerationRecord) -> None:
        """Queue ``generation.started`` for a charged, running job whose client asked for it."""
        if job.webhook_url and WebhookEvent.STARTED.value in (job.webhook_events or ()):
            view = await record_view(record, storage=self.storage, download_seconds=self.download_seconds)
            await self._queue(job, WebhookEvent.STARTED, view)

    async def _queue(self, job: JobMessage, event: WebhookEvent, view: JobView) -> None:
        assert job.webhook_url is not None
        now = time.time()
        payload = WebhookPayload(type=event.value, timestamp=iso(datetime.fromtimestamp(now, UTC)) or "", data=view)
        delivery = WebhookDelivery(
            id=delivery_id(job.job_id, event),
            job_id=job.job_id,
            user_id=job.user_id,
            event=event,
            url=job.webhook_url,
            payload=_encoder.encode(payload).decode(),
            created_at=now,
        )
        if await self.queue.enqueue(delivery):
            self.on_queued()
