"""The admin API under ``/admin``: grants, refunds, the audit trail, generations, ledger check.

The ``admin`` role is required once, by the controller's guard: any other token gets the spec's
403 body, no token the 401. Grants and refunds are recorded as admin actions with the admin's id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.exceptions import SerializationException
from litestar.params import FromPath, JSONBody, QueryParameter

from service.admin import service
from service.admin.schemas import (AuditPage, GrantOut, GrantRequest, RefundOut, RefundRequest, grant_messages,
                                   refund_messages)
from service.core.auth import Principal, admin_guard
from service.core.errors import ValidationFailed
from service.generations.repository import GenerationFilter
from service.generations.schemas import GenerationPage
from service.generations.service import with_download_links
from service.ledger.pagination import DEFAULT_LIMIT
from service.ledger.schemas import EntryFilter, VerifyReport

Limit = Annotated[int, QueryParameter(name="limit", description="Items per page, 1 to 200 (default 50)")]
Cursor = Annotated[str | None, QueryParameter(name="cursor", description="`nextCursor` of the previous page")]
UserId = Annotated[str | None, QueryParameter(name="userId", description="Only this user's items")]
Since = Annotated[datetime | None, QueryParameter(name="since",
                                                  description="Created at or after (ISO-8601; UTC if naive)")]
Until = Annotated[datetime | None, QueryParameter(name="until", description="Created before (ISO-8601; UTC if naive)")]


async def _strict_body(request: Request[Any, Any, Any]) -> None:
    """Check a body against its route's ``validate_body`` before it is decoded.

    Decoding alone would coerce (``"amount": "10"`` becomes 10); class-validator refuses that, and
    so do we: every problem of the raw JSON is listed at once, as a spec-shaped 400.
    """
    validate = request.route_handler.opt.get("validate_body")
    if validate is None:
        return
    try:
        body = await request.json()
    except SerializationException:
        return  # not JSON: decoding reports it
    messages = validate(request, body)
    if messages:
        raise ValidationFailed(messages)


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [admin_guard]
    before_request = _strict_body

    @post("/credits/grants", status_code=200, opt={"validate_body": grant_messages},
          summary="Grant credits to a user", description="Adds a positive integer of credits; answers the new balance.")
    async def grant(self, request: Request[Principal, Any, Any], data: JSONBody[GrantRequest]) -> GrantOut:
        return await service.grant_credits(request.user.user_id, data.user_id, data.amount, data.reason)

    @post("/generations/{generation_id:str}/refund", status_code=200, opt={"validate_body": refund_messages},
          summary="Refund a generation",
          description="Refunds a charged generation in full, once; answers the new balance. 409 when it was "
                      "already refunded or never charged, 404 when unknown.")
    async def refund(self, request: Request[Principal, Any, Any], generation_id: FromPath[str],
                     data: JSONBody[RefundRequest]) -> RefundOut:
        return await service.refund_generation(request.user.user_id, generation_id, data.reason)

    @get("/audit", summary="The audit trail: ledger entries and admin actions, newest first",
         description="`kind` matches an entry's kind (grant, debit, refund, adjustment) or an action's name "
                     "(grant, refund); `userId` an entry's account or an action's target user.")
    async def audit(
        self, user_id: UserId = None, since: Since = None, until: Until = None, limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None, kind: Annotated[str | None, QueryParameter(name="kind")] = None,
        generation_id: Annotated[str | None, QueryParameter(name="generationId")] = None,
    ) -> AuditPage:
        filters = EntryFilter(user_id=user_id, kind=kind, generation_id=generation_id, since=since, until=until)
        return await service.audit(filters, limit=limit, cursor=cursor)

    @get("/generations", summary="Generations of every user, newest first")
    async def generations(
        self, request: Request[Principal, Any, Any], user_id: UserId = None, since: Since = None, until: Until = None, limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None, status: Annotated[str | None, QueryParameter(name="status")] = None,
        model: Annotated[str | None, QueryParameter(name="model")] = None,
        project_id: Annotated[str | None, QueryParameter(name="projectId")] = None,
    ) -> GenerationPage:
        filters = GenerationFilter(user_id=user_id, status=status, model=model, project_id=project_id,
                                   since=since, until=until)
        state = request.app.state
        page = await service.list_generations(filters, limit=limit, cursor=cursor)
        return await with_download_links(page, state.storage, state.settings.download_url_seconds)

    @get("/ledger/verify", summary="Check every ledger invariant over the whole database",
         description="Lists each violation found; `violations` is empty and `ok` true when all hold.")
    async def verify(self) -> VerifyReport:
        return await service.verify()
