"""The endpoints of one generation job, named by the id a 202 answer gave: its status, its events
(Server-Sent Events) and its cancel. Owner or admin only."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.response import ServerSentEvent

from service.core.auth import Principal
from service.core.errors import ErrorBody
from service.core.settings import Settings
from service.generations.cancel import cancel_job
from service.generations.events import job_events
from service.generations.schemas import JobView
from service.generations.service import GenerationService
from service.generations.views import describe_job
from service.jobs.stream import JobStream
from service.jobs.watchers import JobWatchers
from service.storage.base import Storage
from service.webhooks.queue import WebhookQueue


class JobController(Controller):
    path = "/video-gen/jobs"
    tags = ["generation"]

    @get(
        "/{job_id:str}",
        summary="A generation job's status",
        description="The job a 202 answer named: `queued`, `running` (with the model's progress), `succeeded` "
        "(with the spec's success body and a short-lived download URL) or `failed` (with the spec's "
        "error body; credits already refunded), with its webhook deliveries and their attempts. Owner or admin "
        "only; anyone else gets 404.",
    )
    async def job(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        webhooks: NamedDependency[WebhookQueue],
    ) -> JobView:
        return await describe_job(
            job_id,
            principal,
            stream=stream,
            storage=storage,
            download_seconds=settings.download_url_seconds,
            webhooks=webhooks,
        )

    @get(
        "/{job_id:str}/events",
        summary="Follow a generation job: Server-Sent Events",
        description="`text/event-stream`: the job's view at once (`event: state`), then `status` when it starts "
        "running and `progress` for each progress report (message, fraction, the provider's queue position), "
        "then `done` with the same body as `GET /video-gen/jobs/{id}`, and the stream closes. Every event's "
        "data is the job view. Reconnecting (with `Last-Event-ID`) starts again from the current state. Not "
        "counted against the rate limit. Owner or admin only; anyone else gets 404.",
        responses={404: ResponseSpec(ErrorBody, description="No such job (or not yours)")},
    )
    async def events(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        watchers: NamedDependency[JobWatchers],
        generations: NamedDependency[GenerationService],
    ) -> ServerSentEvent:
        seconds = settings.download_url_seconds
        await describe_job(job_id, principal, stream=stream, storage=storage, download_seconds=seconds)  # 404 first
        inbox = generations.inbox
        return ServerSentEvent(
            job_events(
                job_id,
                principal,
                stream=stream,
                storage=storage,
                watchers=watchers,
                download_seconds=seconds,
                closing=lambda: inbox.closing,
            )
        )

    @post(
        "/{job_id:str}/cancel",
        status_code=200,
        summary="Cancel a generation job",
        description="Stops the job and answers its view, `cancelled`: a job not started yet never runs (nothing "
        "was charged); a running one is stopped (its provider request cancelled) and refunded once. A request "
        "waiting on the job gets a 409 `Image-to-video generation cancelled`, and so do retries with its "
        "Idempotency-Key. Cancelling a cancelled job answers it again. Owner or admin only; anyone else gets 404.",
        responses={
            404: ResponseSpec(ErrorBody, description="No such job (or not yours)"),
            409: ResponseSpec(ErrorBody, description="`Job <id> already succeeded` (or `failed`): nothing changed"),
        },
    )
    async def cancel(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
    ) -> JobView:
        await cancel_job(job_id, principal, stream=stream)
        return await describe_job(
            job_id, principal, stream=stream, storage=storage, download_seconds=settings.download_url_seconds
        )
