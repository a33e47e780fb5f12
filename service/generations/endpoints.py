"""``POST /video-gen/image-to-video``: the spec's endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, QueryParameter

from service.core.auth import Principal
from service.core.errors import ErrorBody
from service.generations import repository, service
from service.generations.schemas import GenerationPage, ImageToVideoRequest, ImageToVideoResponse, JobAccepted
from service.generations.validation import image_to_video_messages


def _validate_body(request: Request[Any, Any, Any], body: Any) -> list[str]:
    state = request.app.state
    return image_to_video_messages(body, state.registry, state.settings.model_default)


class GenerationController(Controller):
    path = "/video-gen"
    tags = ["generation"]

    @post(
        "/image-to-video",
        status_code=200,
        opt={"validate_body": _validate_body},
        summary="Generate a video from an image",
        description=(
            "Queues the generation and waits up to SYNC_WAIT_SECONDS for it. Answers 200 with the "
            "spec's body, or 202 with a job id (and `Location: /video-gen/jobs/{id}`) when it takes longer "
            "or `Prefer: respond-async` is sent. With an `Idempotency-Key`, a retry with the same body gets "
            "the first request's outcome (waiting for it if it still runs) and is never charged again; the "
            "same key with another body is a 422. 503 while Redis or the database is unreachable or the "
            "server shuts down: nothing was queued and no credit moved, so the request may be retried."
        ),
        responses={
            202: ResponseSpec(JobAccepted, description="Still running: poll the job's status URL"),
            400: ResponseSpec(ErrorBody, description="Validation error (a list) or insufficient credits"),
            401: ResponseSpec(ErrorBody, description="Missing, invalid or expired token"),
            500: ResponseSpec(ErrorBody, description="Image-to-video generation failed: <details> (refunded)"),
            503: ResponseSpec(ErrorBody, description="Redis or the database unreachable; nothing queued"),
        },
    )
    async def image_to_video(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[ImageToVideoRequest],
        prefer: Annotated[str | None, HeaderParameter(name="Prefer", required=False,
                                                      description="`respond-async`: answer 202 at once")] = None,
        idempotency_key: Annotated[str | None, HeaderParameter(
            name="Idempotency-Key", required=False, description="Retries with the same key and body run once (24 h)"
        )] = None,
    ) -> Response[ImageToVideoResponse | JobAccepted]:
        state = request.app.state
        sub = service.Submission(
            principal=request.user, request=data, idempotency_key=idempotency_key,
            respond_async=bool(prefer and "respond-async" in prefer.lower()),
        )
        result = await service.request_video(sub, registry=state.registry, queue=state.queue, settings=state.settings)
        if isinstance(result, JobAccepted):
            headers = {"Location": result.status_url}
            if sub.respond_async:
                headers["Preference-Applied"] = "respond-async"
            return Response(result, status_code=202, headers=headers)
        return Response(result, status_code=200)

    @get("/generations", summary="Your generations, newest first",
         description="The caller's own generation history (never another user's), optionally of one project; "
                     "cursor-paginated with `limit` (1 to 200, default 50) and `cursor` (the previous `nextCursor`).")
    async def my_generations(
        self,
        request: Request[Principal, Any, Any],
        project_id: Annotated[str | None, QueryParameter(name="projectId", description="Only this project's")] = None,
        limit: Annotated[int, QueryParameter(name="limit", description="Items per page, 1 to 200")] = 50,
        cursor: Annotated[str | None, QueryParameter(name="cursor",
                                                     description="`nextCursor` of the previous page")] = None,
    ) -> GenerationPage:
        filters = repository.GenerationFilter(user_id=request.user.user_id, project_id=project_id)
        state = request.app.state
        page = await repository.list_page(filters, limit=limit, cursor=cursor)
        return await service.with_download_links(page, state.storage, state.settings.download_url_seconds)
