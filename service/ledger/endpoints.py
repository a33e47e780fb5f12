"""``GET /video-gen/credits``: the caller's own balance and ledger entries."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.core.auth import Principal
from service.core.pagination import DEFAULT_LIMIT
from service.ledger import service
from service.ledger.schemas import CreditsOut

LIMIT = QueryParameter(name="limit", description="Entries per page, 1 to 200 (default 50)")
CURSOR = QueryParameter(name="cursor", description="`nextCursor` of the previous page")


class CreditsController(Controller):
    path = "/video-gen/credits"
    tags = ["credits"]

    @get(
        "/",
        summary="Your credit balance and recent ledger entries",
        description="The balance is rendered as the spec renders it (`150.0`); entries newest first, "
        "cursor-paginated. Only the caller's own account is ever shown.",
    )
    async def my_credits(
        self,
        principal: NamedDependency[Principal],
        limit: Annotated[int, LIMIT] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> CreditsOut:
        return await service.credits_of(principal.user_id, limit=limit, cursor=cursor)
