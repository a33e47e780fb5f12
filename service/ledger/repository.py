"""Reads of accounts and ledger entries (writes are ``service.ledger.service``'s alone, through ``postings.py``)."""

from __future__ import annotations

from typing import Any

from service.core import pagination
from service.core.pagination import Cursor
from service.ledger.schemas import EntryFilter
from service.ledger.tables import Account, LedgerEntry

ENTRY_RANK = 0  # in the audit trail, ledger entries sort before admin actions of the same instant


async def account(user_id: str) -> dict[str, Any] | None:
    return await Account.select().where(Account.user_id == user_id).first()


async def entries(filters: EntryFilter, *, limit: int, cursor: Cursor | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` entries matching ``filters`` after ``cursor``, newest first."""
    query = LedgerEntry.select().order_by(LedgerEntry.created_at, LedgerEntry.id, ascending=False).limit(limit)
    if filters.user_id is not None:
        query = query.where(LedgerEntry.user_id == filters.user_id)
    if filters.kind is not None:
        query = query.where(LedgerEntry.kind == filters.kind)
    if filters.generation_id is not None:
        query = query.where(LedgerEntry.generation_id == filters.generation_id)
    if filters.since is not None:
        query = query.where(LedgerEntry.created_at >= pagination.utc(filters.since))
    if filters.until is not None:
        query = query.where(LedgerEntry.created_at < pagination.utc(filters.until))
    if cursor is not None:
        query = query.where(pagination.after(cursor, LedgerEntry.created_at, LedgerEntry.id, ENTRY_RANK))
    return await query


def position(row: dict[str, Any]) -> tuple[Any, Any, int]:
    """An entry's place in newest-first order, for its cursor."""
    return row["created_at"], row["id"], ENTRY_RANK
