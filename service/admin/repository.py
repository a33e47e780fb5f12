"""Admin actions: recorded (append-only) and listed for the audit trail."""

from __future__ import annotations

from typing import Any

from service.admin.tables import AdminAction
from service.core import pagination
from service.core.pagination import Cursor
from service.ledger.postings import now
from service.ledger.schemas import EntryFilter

ACTION_RANK = 1  # in the audit trail, after the ledger entries of the same instant


async def record(
    admin_id: str,
    action: str,
    *,
    reason: str,
    target_user_id: str | None = None,
    generation_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one admin action; returns its id. Call it inside the action's own transaction."""
    row = AdminAction(
        admin_id=admin_id,
        action=action,
        target_user_id=target_user_id,
        generation_id=generation_id,
        reason=reason,
        details=details or {},
        created_at=now(),
    )
    result = await AdminAction.insert(row).returning(AdminAction.id)
    return result[0]["id"]


async def actions(filters: EntryFilter, *, limit: int, cursor: Cursor | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` actions matching ``filters`` after ``cursor``, newest first.

    ``user_id`` matches the action's target user and ``kind`` its action name (grant, refund, cancel).
    """
    query = AdminAction.select().order_by(AdminAction.created_at, AdminAction.id, ascending=False).limit(limit)
    if filters.user_id is not None:
        query = query.where(AdminAction.target_user_id == filters.user_id)
    if filters.kind is not None:
        query = query.where(AdminAction.action == filters.kind)
    if filters.generation_id is not None:
        query = query.where(AdminAction.generation_id == filters.generation_id)
    if filters.since is not None:
        query = query.where(AdminAction.created_at >= pagination.utc(filters.since))
    if filters.until is not None:
        query = query.where(AdminAction.created_at < pagination.utc(filters.until))
    if cursor is not None:
        query = query.where(pagination.after(cursor, AdminAction.created_at, AdminAction.id, ACTION_RANK))
    return await query.output(load_json=True)


def position(row: dict[str, Any]) -> tuple[Any, Any, int]:
    return row["created_at"], row["id"], ACTION_RANK
