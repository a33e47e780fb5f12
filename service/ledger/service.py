"""Money operations. Each one is a single transaction that moves the stored balance and appends
its entry together; the debit is one conditional UPDATE, never a read followed by a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from service.core.db import write_transaction
from service.core.errors import BadRequest, Conflict, InsufficientCredits, NotFound
from service.generations.tables import Generation
from service.ledger.tables import Account, LedgerEntry

SYSTEM = "system"


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Charge:
    """The result of charging a new generation."""

    used: int
    balance: int


async def ensure_account(user_id: str) -> None:
    """Create the user's account with a zero balance on first use (idempotent)."""
    ts = now()
    await Account.insert(Account(user_id=user_id, balance=0, created_at=ts, updated_at=ts)).on_conflict(
        action="DO NOTHING"
    )


async def _move(user_id: str, delta: int, *, require: int | None = None) -> int | None:
    """Add ``delta`` to the balance (only while balance >= require) and return the new balance."""
    query = Account.update({Account.balance: Account.balance + delta, Account.updated_at: now()})
    where = Account.user_id == user_id
    if require is not None:
        where &= Account.balance >= require
    rows = await query.where(where).returning(Account.balance)
    return rows[0]["balance"] if rows else None


async def _append(user_id: str, kind: str, amount: int, balance_after: int, *, actor: str, reason: str,
                  generation_id: str | None = None, unique_key: str | None = None) -> bool:
    """Append an entry; False when ``unique_key`` already exists (the caller rolls back)."""
    entry = LedgerEntry(user_id=user_id, kind=kind, amount=amount, balance_after=balance_after,
                        generation_id=generation_id, actor=actor, reason=reason,
                        unique_key=unique_key, created_at=now())
    rows = await LedgerEntry.insert(entry).on_conflict(target=LedgerEntry.unique_key, action="DO NOTHING").returning(
        LedgerEntry.id
    )
    return bool(rows)


async def balance_of(user_id: str) -> int:
    row = await Account.select(Account.balance).where(Account.user_id == user_id).first()
    return row["balance"] if row else 0


async def charge_generation(record: dict[str, Any], cost: int) -> Charge:
    """Debit ``cost`` and create the generation row in one transaction.

    Raises ``InsufficientCredits`` (nothing written) when the balance is short, and ``Conflict``
    when the generation was already charged (a redelivered job must resume, not charge again).
    """
    user_id, generation_id = record["user_id"], record["id"]
    await ensure_account(user_id)
    async with write_transaction():
        balance = await _move(user_id, -cost, require=cost)
        if balance is None:
            raise InsufficientCredits(cost, await balance_of(user_id))
        fresh = await _append(user_id, "debit", -cost, balance, actor=user_id, reason=f"generation {generation_id}",
                              generation_id=generation_id, unique_key=f"debit:{generation_id}")
        if not fresh:
            raise Conflict(f"Generation {generation_id} is already charged")
        await Generation.insert(Generation(**record, credits_charged=cost, created_at=now()))
    return Charge(used=cost, balance=balance)


async def refund_generation(generation_id: str, *, actor: str, reason: str) -> int:
    """Refund a charged generation once, returning the new balance.

    ``Conflict`` if it was already refunded or never charged; ``NotFound`` if unknown.
    """
    async with write_transaction():
        gen = await Generation.select(Generation.user_id, Generation.credits_charged).where(
            Generation.id == generation_id
        ).first()
        if gen is None:
            raise NotFound(f"Generation {generation_id} not found")
        amount = gen["credits_charged"]
        if amount <= 0:
            raise Conflict(f"Generation {generation_id} was never charged")
        balance = await _move(gen["user_id"], amount)
        if balance is None or not await _append(
            gen["user_id"], "refund", amount, balance, actor=actor, reason=reason,
            generation_id=generation_id, unique_key=f"refund:{generation_id}",
        ):
            raise Conflict(f"Generation {generation_id} is already refunded")
        await Generation.update({Generation.credits_refunded: amount}).where(Generation.id == generation_id)
    return balance


async def grant(user_id: str, amount: int, *, actor: str, reason: str, kind: str = "grant") -> int:
    """Add credits (a grant or, with ``kind='adjustment'``, a correction); returns the new balance."""
    if amount <= 0:
        raise BadRequest("amount must be a positive integer")
    await ensure_account(user_id)
    async with write_transaction():
        balance = await _move(user_id, amount)
        assert balance is not None  # the account exists: ensure_account above
        await _append(user_id, kind, amount, balance, actor=actor, reason=reason)
    return balance
