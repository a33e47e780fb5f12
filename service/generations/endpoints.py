"""The generation endpoints: the spec's ``POST /video-gen/image-to-video`` and the caller's history.

A job's own endpoints (status, events, cancel) are in ``job_endpoints.py``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, QueryParameter

from service.core.auth import Principal
from service.core.errors import ErrorBody
from service.core.settings import Settings
from service.core.validation import strict
from service.generations.schemas import (
    GenerationFilter,
    GenerationPage,
    ImageToVideoRequest,
    ImageToVideoResponse,
    JobAccepted,
)
from service.generations.service import GenerationService, Submission
from service.generations.validation import image_to_video_messages
from service.generations.views import list_generations
from service.jobs.messages import JobReply
from service.storage.base import Storage


def _check_body(request: Request[Any, Any, Any], body: Any) -> list[str]:
    state = request.app.state
    settings = state.settings
    return image_to_video_messages(
        body,
        state.registry,
        state.registry.default_model(settings.default_model),
        max_prompt_chars=settings.max_prompt_chars,
        settings=settings,
    )


POST_DESCRIPTION = (
    "Queues the generation and waits up to SYNC_WAIT_SECONDS for it. Answers 200 with the spec's body, or "
    "202 with a job id (and `Location: /video-gen/jobs/{id}`) when it takes longer or `Prefer: respond-async` "
    "is sent. With an `Idempotency-Key`, a retry with the same body gets the first request's outcome (waiting "
    "for it if it still runs) and is never charged again; the same key with another body is a 422. 503 while "
    "Redis or the database is unreachable or the server shuts down: nothing was queued and no credit moved, "
    "so the request may be retried."
)
POST_RESPONSES = {
    202: ResponseSpec(JobAccepted, description="Still running: poll the job's status URL"),
    400: ResponseSpec(ErrorBody, description="Validation error (a list) or insufficient credits"),
    401: ResponseSpec(ErrorBody, description="Missing, invalid or expired token"),
    500: ResponseSpec(ErrorBody, description="Image-to-video generation failed: <details> (refunded)"),
    503: ResponseSpec(ErrorBody, description="Redis or the database unreachable; nothing queued"),
}
Prefer = Annotated[
    str | None, HeaderParameter(name="Prefer", required=False, description="`respond-async`: answer 202 at once")
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", required=False, description="Retries with the same key and body run once (24 h)"
    ),
]


class GenerationController(Controller):
    path = "/video-gen"
    tags = ["generation"]

    @post(
        "/image-to-video",
        status_code=200,
        opt=strict(_check_body),
        summary="Generate a video from an image",
        description=POST_DESCRIPTION,
        responses=POST_RESPONSES,
    )
    async def image_to_video(
        self,
        data: JSONBody[ImageToVideoRequest],
        request: Request[Principal, Any, Any],
        generations: NamedDependency[GenerationService],
        prefer: Prefer = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ImageToVideoResponse | JobAccepted]:
        # The caller from ``request.user`` (what the ``principal`` dependency returns) rather than as
        # a second dependency: Litestar resolves two or more dependencies of one level in an anyio
        # task group, about a tenth of this, the hottest handler's, CPU per request.
        principal = request.user
        respond_async = bool(prefer and "respond-async" in prefer.lower())
        outcome = await generations.request_video(
            Submission(principal=principal, request=data, respond_async=respond_async, idempotency_key=idempotency_key)
        )
        if isinstance(outcome, JobReply):  # the worker's body, sent as it wrote it
            return Response(outcome.body, status_code=outcome.status_code, media_type=MediaType.JSON)
        headers = {"Location": outcome.status_url}
        if respond_async:
            headers["Preference-Applied"] = "respond-async"
        return Response(outcome, status_code=202, headers=headers)

    @get(
        "/generations",
        summary="Your generations, newest first",
        description="The caller's own generation history (never another user's), optionally of one project; "
        "cursor-paginated with `limit` (1 to 200, default 50) and `cursor` (the previous `nextCursor`).",
    )
    async def my_generations(
        self,
        principal: NamedDependency[Principal],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        project_id: Annotated[str | None, QueryParameter(name="projectId", description="Only this project's")] = None,
        limit: Annotated[int, QueryParameter(name="limit", description="Items per page, 1 to 200")] = 50,
        cursor: Annotated[
            str | None, QueryParameter(name="cursor", description="`nextCursor` of the previous page")
        ] = None,
    ) -> GenerationPage:
        filters = GenerationFilter(user_id=principal.user_id, project_id=project_id)
        return await list_generations(
            filters, limit=limit, cursor=cursor, storage=storage, download_seconds=settings.download_url_seconds
        )
