"""The queue under ``/admin/queue`` (role ``admin``): its state, dead letters, requeue and discard.

The same service functions serve the operator console (``service.console``), so an action taken
in either is the same admin action in the audit trail.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from service.admin import queue
from service.admin.queue_schemas import DeadLetterPage, QueueActionOut, QueueOut
from service.admin.schemas import RefundRequest, refund_messages
from service.core.auth import Principal, admin_guard
from service.core.pagination import DEFAULT_LIMIT
from service.core.validation import strict
from service.jobs.stream import JobStream

Limit = Annotated[int, QueryParameter(name="limit", description="Items per page, 1 to 200 (default 50)")]
Cursor = Annotated[str | None, QueryParameter(name="cursor", description="`nextCursor` of the previous page")]
# The body of requeue and discard is a refund's: ``{"reason": "..."}``, checked the same way.
ReasonBody = JSONBody[RefundRequest]


class QueueAdminController(Controller):
    path = "/admin/queue"
    tags = ["admin"]
    guards = [admin_guard]

    @get(summary="The queue: jobs waiting and running (per model and per worker) and the dead letters' count")
    async def state(self, stream: NamedDependency[JobStream], limit: Limit = DEFAULT_LIMIT) -> QueueOut:
        return await queue.queue(stream, limit=limit)

    @get("/dead-letters", summary="Dead letters, newest first, with the reason each job was not run")
    async def dead_letters(
        self, stream: NamedDependency[JobStream], limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> DeadLetterPage:
        return await queue.dead_letters(stream, limit=limit, cursor=cursor)

    @post(
        "/dead-letters/{dead_letter_id:str}/requeue",
        status_code=200,
        opt=strict(refund_messages),
        summary="Requeue a dead letter's job (once); 409 when it holds no readable job",
    )
    async def requeue(
        self,
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        dead_letter_id: FromPath[str],
        data: ReasonBody,
    ) -> QueueActionOut:
        return await queue.requeue(principal.user_id, dead_letter_id, data.reason, stream=stream)

    @post(
        "/dead-letters/{dead_letter_id:str}/discard",
        status_code=200,
        opt=strict(refund_messages),
        summary="Delete a dead letter for good",
    )
    async def discard(
        self,
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        dead_letter_id: FromPath[str],
        data: ReasonBody,
    ) -> QueueActionOut:
        return await queue.discard(principal.user_id, dead_letter_id, data.reason, stream=stream)
