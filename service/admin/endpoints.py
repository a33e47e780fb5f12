"""The admin API under ``/admin``: grants, refunds, cancels, the audit trail, generations, ledger check.

The ``admin`` role is required once, by the controller's guard: any other token gets the spec's
403 body, no token the 401. Grants, refunds and cancels are recorded as admin actions with the admin's id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from service.admin import service
from service.admin.schemas import (
    AuditPage,
    CancelOut,
    CancelRequest,
    GrantOut,
    GrantRequest,
    RefundOut,
    RefundRequest,
    grant_messages,
    refund_messages,
)
from service.core.auth import Principal, admin_guard
from service.core.pagination import DEFAULT_LIMIT, time_filter
from service.core.settings import Settings
from service.core.validation import strict
from service.generations.schemas import GenerationFilter, GenerationPage
from service.generations.status import GenerationStatus
from service.generations.views import list_generations
from service.jobs.stream import JobStream
from service.ledger.schemas import EntryFilter, VerifyReport
from service.storage.base import Storage

Limit = Annotated[int, QueryParameter(name="limit", description="Items per page, 1 to 200 (default 50)")]
Cursor = Annotated[str | None, QueryParameter(name="cursor", description="`nextCursor` of the previous page")]
UserId = Annotated[str | None, QueryParameter(name="userId", description="Only this user's items")]
Since = Annotated[
    datetime | None, QueryParameter(name="since", description="Created at or after (ISO-8601; UTC if naive)")
]
Until = Annotated[datetime | None, QueryParameter(name="until", description="Created before (ISO-8601; UTC if naive)")]


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [admin_guard]

    @post(
        "/credits/grants",
        status_code=200,
        opt=strict(grant_messages),
        summary="Grant credits to a user",
        description="Adds a positive integer of credits; answers the new balance.",
    )
    async def grant(self, principal: NamedDependency[Principal], data: JSONBody[GrantRequest]) -> GrantOut:
        return await service.grant_credits(principal.user_id, data.user_id, data.amount, data.reason)

    @post(
        "/generations/{generation_id:str}/refund",
        status_code=200,
        opt=strict(refund_messages),
        summary="Refund a generation",
        description="Refunds a charged generation in full, once; answers the new balance. 409 when it was "
        "already refunded or never charged, 404 when unknown.",
    )
    async def refund(
        self, principal: NamedDependency[Principal], generation_id: FromPath[str], data: JSONBody[RefundRequest]
    ) -> RefundOut:
        return await service.refund_generation(principal.user_id, generation_id, data.reason)

    @post(
        "/generations/{generation_id:str}/cancel",
        status_code=200,
        opt=strict(refund_messages),
        summary="Cancel a generation",
        description="Cancels a queued or running generation as its owner could, refunded in full when it was "
        "charged, and records the action with its reason. 409 when it already succeeded or failed, 404 when unknown.",
    )
    async def cancel(
        self,
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        generation_id: FromPath[str],
        data: JSONBody[CancelRequest],
    ) -> CancelOut:
        return await service.cancel_generation(principal, generation_id, data.reason, stream=stream)

    @get(
        "/audit",
        summary="The audit trail: ledger entries and admin actions, newest first",
        description="`kind` matches an entry's kind (grant, debit, refund, adjustment) or an action's name "
        "(grant, refund, cancel); `userId` an entry's account or an action's target user.",
    )
    async def audit(
        self,
        user_id: UserId = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        kind: Annotated[str | None, QueryParameter(name="kind")] = None,
        generation_id: Annotated[str | None, QueryParameter(name="generationId")] = None,
    ) -> AuditPage:
        since, until = time_filter("since", since), time_filter("until", until)
        filters = EntryFilter(user_id=user_id, kind=kind, generation_id=generation_id, since=since, until=until)
        return await service.audit(filters, limit=limit, cursor=cursor)

    @get("/generations", summary="Generations of every user, newest first")
    async def generations(
        self,
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        user_id: UserId = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        status: Annotated[GenerationStatus | None, QueryParameter(name="status")] = None,
        model: Annotated[str | None, QueryParameter(name="model")] = None,
        project_id: Annotated[str | None, QueryParameter(name="projectId")] = None,
    ) -> GenerationPage:
        since, until = time_filter("since", since), time_filter("until", until)
        filters = GenerationFilter(
            user_id=user_id, status=status, model=model, project_id=project_id, since=since, until=until
        )
        return await list_generations(
            filters, limit=limit, cursor=cursor, storage=storage, download_seconds=settings.download_url_seconds
        )

    @get(
        "/ledger/verify",
        summary="Check every ledger invariant over the whole database",
        description="Lists each violation found; `violations` is empty and `ok` true when all hold.",
    )
    async def verify(self) -> VerifyReport:
        return await service.verify()
