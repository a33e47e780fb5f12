"""Admin operations: grants and refunds (each recorded as an admin action in the same transaction
as its ledger entry, so neither exists without the other), the audit trail, generation listings
and the ledger check.
"""

from __future__ import annotations

import heapq
from typing import Any

from service.admin import repository as actions
from service.admin.schemas import AuditItem, AuditPage, CancelOut, GrantOut, RefundOut
from service.core import pagination
from service.core.claims import Principal
from service.core.db import write_transaction
from service.generations import settlement
from service.generations.cancel import cancel_job
from service.jobs.stream import JobStream
from service.ledger import repository as entries
from service.ledger import service as ledger
from service.ledger.schemas import EntryFilter, VerifyReport
from service.ledger.verify import verify_ledger


async def grant_credits(admin_id: str, user_id: str, amount: int, reason: str) -> GrantOut:
    """Add ``amount`` credits to ``user_id``'s account; answers the new balance."""
    async with write_transaction():
        moved = await ledger.add_credits(user_id, amount, actor=admin_id, reason=reason)
        action_id = await actions.record(
            admin_id,
            "grant",
            reason=reason,
            target_user_id=user_id,
            details={"amount": amount, "balanceAfter": moved.balance, "entryId": moved.entry_id},
        )
    return GrantOut(
        user_id=user_id, amount=amount, balance=float(moved.balance), entry_id=moved.entry_id, action_id=action_id
    )


async def refund_generation(admin_id: str, generation_id: str, reason: str) -> RefundOut:
    """Refund a charged, unrefunded generation in full (409 otherwise, 404 if unknown)."""
    async with write_transaction():
        refund = await settlement.refund_by_admin(generation_id, admin_id=admin_id, reason=reason)
        action_id = await actions.record(
            admin_id,
            "refund",
            reason=reason,
            target_user_id=refund.user_id,
            generation_id=generation_id,
            details={"amount": refund.amount, "balanceAfter": refund.balance, "entryId": refund.entry_id},
        )
    return RefundOut(
        generation_id=generation_id,
        user_id=refund.user_id,
        refunded=refund.amount,
        balance=float(refund.balance),
        action_id=action_id,
    )


async def cancel_generation(admin: Principal, generation_id: str, reason: str, *, stream: JobStream) -> CancelOut:
    """Cancel a queued or running job as its owner could (``cancel_job``: 404 unknown, 409 ended),
    refunded in full when it was charged, and record it as an admin action. The action is written
    once the cancel is: a cancel also tells Redis, which no database transaction can take back."""
    record = await cancel_job(generation_id, admin, stream=stream)
    action_id = await actions.record(
        admin.user_id,
        "cancel",
        reason=reason,
        target_user_id=record.user_id,
        generation_id=generation_id,
        details={"refunded": record.credits_refunded},
    )
    return CancelOut(
        generation_id=generation_id,
        user_id=record.user_id,
        status=str(record.status),
        refunded=record.credits_refunded,
        action_id=action_id,
    )


def _entry_item(row: dict[str, Any]) -> AuditItem:
    return AuditItem(
        type="entry",
        id=row["id"],
        created_at=pagination.iso(row["created_at"]) or "",
        kind=row["kind"],
        user_id=row["user_id"],
        generation_id=row["generation_id"],
        actor=row["actor"],
        reason=row["reason"],
        amount=int(row["amount"]),
        balance_after=float(row["balance_after"]),
    )


def _action_item(row: dict[str, Any]) -> AuditItem:
    details = row["details"] if isinstance(row["details"], dict) else None
    return AuditItem(
        type="action",
        id=row["id"],
        created_at=pagination.iso(row["created_at"]) or "",
        kind=row["action"],
        user_id=row["target_user_id"],
        generation_id=row["generation_id"],
        actor=row["admin_id"],
        reason=row["reason"],
        details=details,
    )


async def audit(filters: EntryFilter, *, limit: int, cursor: str | None) -> AuditPage:
    """Ledger entries and admin actions, newest first, merged into one cursor-paginated list.

    Each source yields at most ``limit + 1`` rows after the cursor; their merge in
    ``(created_at, rank, id)`` order decides the page and the next cursor.
    """
    limit, after = pagination.check_limit(limit), pagination.decode(cursor)
    entry_rows = await entries.entries(filters, limit=limit + 1, cursor=after)
    action_rows = await actions.actions(filters, limit=limit + 1, cursor=after)
    tagged = heapq.merge(
        [(entries.position(r), _entry_item, r) for r in entry_rows],
        [(actions.position(r), _action_item, r) for r in action_rows],
        key=lambda t: (t[0][0], t[0][2], t[0][1]),
        reverse=True,
    )
    rows, next_cursor = pagination.page(list(tagged), limit, lambda t: t[0])
    return AuditPage(items=[render(row) for _, render, row in rows], next_cursor=next_cursor)


async def verify() -> VerifyReport:
    return await verify_ledger()
