"""Postings: the two statements every money movement makes, moving an account's balance and
appending the ledger entry that records it. ``service.py`` runs them in one transaction.

Written as SQL once: they run for every job, and Piccolo's query builder costs more than the
round trip here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from service.ledger.tables import Account, LedgerEntry


class EntryKind(StrEnum):
    GRANT = "grant"
    DEBIT = "debit"  # one per generation (unique key ``debit:<generation>``)
    REFUND = "refund"  # at most one per generation (``refund:<generation>``)
    ADJUSTMENT = "adjustment"


KINDS = tuple(EntryKind)


def now() -> datetime:
    return datetime.now(UTC)


async def ensure_account(user_id: str) -> None:
    """Create the user's account with a zero balance on first use (idempotent)."""
    ts = now()
    await Account.insert(Account(user_id=user_id, balance=0, created_at=ts, updated_at=ts)).on_conflict(
        action="DO NOTHING"
    )


_MOVE = "UPDATE accounts SET balance = balance + {}, updated_at = {} WHERE user_id = {} RETURNING balance"
_MOVE_IF = f"{_MOVE.removesuffix(' RETURNING balance')} AND balance >= {{}} RETURNING balance"
_APPEND = (
    "INSERT INTO ledger_entries (user_id, kind, amount, balance_after, generation_id, actor, reason, unique_key, "
    "created_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) ON CONFLICT (unique_key) DO NOTHING RETURNING id"
)


async def move(user_id: str, delta: int, *, require: int | None = None) -> int | None:
    """Add ``delta`` to the balance in one statement (only while ``balance >= require``).

    Returns the new balance, or None when no row matched (too little credit, or no account).
    """
    if require is None:
        rows = await Account.raw(_MOVE, delta, now(), user_id)
    else:
        rows = await Account.raw(_MOVE_IF, delta, now(), user_id, require)
    return rows[0]["balance"] if rows else None


async def append(
    user_id: str,
    kind: EntryKind,
    amount: int,
    balance_after: int,
    *,
    actor: str,
    reason: str,
    generation_id: str | None = None,
) -> int | None:
    """Append an entry and return its id; None when the generation already has one of ``kind``.

    Debits and refunds carry ``kind:generation`` as ``unique_key``: the database's unique
    constraint is what makes a second debit or refund impossible, the caller then rolls back.
    """
    unique_key = f"{kind}:{generation_id}" if kind in (EntryKind.DEBIT, EntryKind.REFUND) else None
    rows = await LedgerEntry.raw(
        _APPEND, user_id, str(kind), amount, balance_after, generation_id, actor, reason, unique_key, now()
    )
    return rows[0]["id"] if rows else None
