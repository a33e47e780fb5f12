"""``GET /video-gen/jobs/{id}``: a job's status, progress and outcome."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath

from service.core.auth import Principal
from service.jobs.schemas import JobView
from service.jobs.status import describe_job


class JobsController(Controller):
    path = "/video-gen/jobs"
    tags = ["jobs"]

    @get(
        "/{job_id:str}",
        summary="A generation job's status",
        description=(
            "The job a 202 answer named: `queued`, `running` (with the model's progress), `succeeded` "
            "(with the spec's success body and a short-lived download URL) or `failed` (with the spec's "
            "error body; credits already refunded). Owner or admin only; anyone else gets 404."
        ),
    )
    async def job(self, request: Request[Principal, Any, Any], job_id: FromPath[str]) -> JobView:
        state = request.app.state
        return await describe_job(job_id, request.user, queue=state.queue, storage=state.storage,
                                  download_seconds=state.settings.download_url_seconds)
