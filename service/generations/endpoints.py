"""``POST /video-gen/image-to-video``: the spec's endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.params import HeaderParameter, JSONBody

from service.core.auth import Principal
from service.generations import service
from service.generations.schemas import ImageToVideoRequest, ImageToVideoResponse, JobAccepted
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
            "spec's body, or 202 with a job id when it takes longer or `Prefer: respond-async` is sent."
        ),
        responses={202: None},
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
        return Response(result, status_code=202 if isinstance(result, JobAccepted) else 200)
