"""Money operations. Each one is a single transaction that moves the stored balance and appends
its entry together; the debit is one conditional UPDATE, never a read followed by a write.

Every operation updates the account row first: on PostgreSQL that row lock serializes all money
movements of one user, on SQLite the IMMEDIATE transaction holds the database's write lock. The
entry then records the balance the UPDATE returned, and the database checks that it continues
the account's chain of entries (see the ``ledger_invariants`` migration).

Operations nest: called inside an outer ``write_transaction`` (an admin action recording itself
with the movement) they join it, and all of it commits or none.
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
KINDS = ("grant", "debit", "refund", "adjustment")
MAX_AMOUNT = 10**12  # far below BigInt's range: no sum of entries can overflow


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Charge:
    """The result of charging a new generation."""

    used: int
    balance: int


@dataclass(frozen=True)
class Refund:
    """The result of refunding a generation."""

    generation_id: str
    user_id: str
    amount: int
    balance: int
    entry_id: int


@dataclass(frozen=True)
class Movement:
    """A grant or adjustment: the balance after it and its entry."""

    balance: int
    entry_id: int


async def ensure_account(user_id: str) -> None:
    """Create the user's account with a zero balance on first use (idempotent)."""
    ts = now()
    await Account.insert(Account(user_id=user_id, balance=0, created_at=ts, updated_at=ts)).on_conflict(
        action="DO NOTHING"
    )


async def _move(user_id: str, delta: int, *, require: int | None = None) -> int | None:
    """Add ``delta`` to the balance in one statement (only while ``balance >= require``).

    Returns the new balance, or None when no row matched (too little credit, or no account).
    """
    query = Account.update({Account.balance: Account.balance + delta, Account.updated_at: now()})
    where = Account.user_id == user_id
    if require is not None:
        where &= Account.balance >= require
    rows = await query.where(where).returning(Account.balance)
    return rows[0]["balance"] if rows else None


async def _append(user_id: str, kind: str, amount: int, balance_after: int, *, actor: str, reason: str,
                  generation_id: str | None = None) -> int | None:
    """Append an entry and return its id; None when the generation already has one of ``kind``.

    Debits and refunds carry ``kind:generation`` as ``unique_key``: the database's unique
    constraint is what makes a second debit or refund impossible, the caller then rolls back.
    """
    unique_key = f"{kind}:{generation_id}" if kind in ("debit", "refund") else None
    entry = LedgerEntry(user_id=user_id, kind=kind, amount=amount, balance_after=balance_after,
                        generation_id=generation_id, actor=actor, reason=reason,
                        unique_key=unique_key, created_at=now())
    rows = await LedgerEntry.insert(entry).on_conflict(target=LedgerEntry.unique_key, action="DO NOTHING").returning(
        LedgerEntry.id
    )
    return rows[0]["id"] if rows else None


async def balance_of(user_id: str) -> int:
    row = await Account.select(Account.balance).where(Account.user_id == user_id).first()
    return row["balance"] if row else 0


def check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise BadRequest(f"amount must be a positive integer not greater than {MAX_AMOUNT}")


async def charge_generation(record: dict[str, Any], cost: int) -> Charge:
    """Create the generation row and debit ``cost`` for it, in one transaction.

    ``Conflict`` when the generation exists already (a redelivered job must resume, not charge
    again: the row is inserted first so this is what a retry sees, whatever the balance is now);
    ``InsufficientCredits`` when the balance is short (nothing written). A ``cost`` of 0 (a free
    model) creates the row with no debit entry.
    """
    user_id, generation_id = record["user_id"], record["id"]
    async with write_transaction():
        await ensure_account(user_id)
        row = Generation(**record, credits_charged=cost, credits_refunded=0, created_at=now())
        inserted = await Generation.insert(row).on_conflict(target=Generation.id, action="DO NOTHING").returning(
            Generation.id
        )
        if not inserted:
            raise Conflict(f"Generation {generation_id} is already charged")
        if not cost:
            return Charge(used=0, balance=await balance_of(user_id))
        balance = await _move(user_id, -cost, require=cost)
        if balance is None:
            raise InsufficientCredits(cost, await balance_of(user_id))
        if await _append(user_id, "debit", -cost, balance, actor=user_id, reason=f"generation {generation_id}",
                         generation_id=generation_id) is None:
            raise Conflict(f"Generation {generation_id} is already charged")  # rolls the move back
    return Charge(used=cost, balance=balance)


async def refund(generation_id: str, *, actor: str, reason: str) -> Refund:
    """Refund a charged generation in full, once.

    The amount comes from the generation's debit entry, which can never change (append-only);
    the balance moves relatively, and the unique refund key rejects a second refund.
    ``Conflict`` if already refunded or never charged; ``NotFound`` if the generation is unknown.
    """
    async with write_transaction():
        debit = await LedgerEntry.select(LedgerEntry.user_id, LedgerEntry.amount).where(
            LedgerEntry.unique_key == f"debit:{generation_id}"
        ).first()
        if debit is None:
            if not await Generation.exists().where(Generation.id == generation_id):
                raise NotFound(f"Generation {generation_id} not found")
            raise Conflict(f"Generation {generation_id} was never charged")
        user_id, amount = debit["user_id"], -debit["amount"]
        balance = await _move(user_id, amount)
        entry_id = None if balance is None else await _append(
            user_id, "refund", amount, balance, actor=actor, reason=reason, generation_id=generation_id
        )
        if balance is None or entry_id is None:
            raise Conflict(f"Generation {generation_id} is already refunded")
        await Generation.update({Generation.credits_refunded: amount}).where(Generation.id == generation_id)
    return Refund(generation_id=generation_id, user_id=user_id, amount=amount, balance=balance, entry_id=entry_id)


async def refund_generation(generation_id: str, *, actor: str, reason: str) -> int:
    """``refund`` answering just the new balance (the workers' call)."""
    return (await refund(generation_id, actor=actor, reason=reason)).balance


async def add_credits(user_id: str, amount: int, *, actor: str, reason: str, kind: str = "grant") -> Movement:
    """Add credits (a grant or, with ``kind='adjustment'``, a correction)."""
    check_amount(amount)
    if kind not in ("grant", "adjustment"):
        raise BadRequest("kind must be grant or adjustment")
    async with write_transaction():
        await ensure_account(user_id)
        balance = await _move(user_id, amount)
        if balance is None:  # unreachable: ensure_account ran in this transaction
            raise Conflict(f"Account {user_id} is missing")
        entry_id = await _append(user_id, kind, amount, balance, actor=actor, reason=reason)
    assert entry_id is not None  # only debits and refunds carry a unique key that can collide
    return Movement(balance=balance, entry_id=entry_id)


async def grant(user_id: str, amount: int, *, actor: str, reason: str, kind: str = "grant") -> int:
    """``add_credits`` answering just the new balance."""
    return (await add_credits(user_id, amount, actor=actor, reason=reason, kind=kind)).balance


async def deduct(user_id: str, amount: int, *, actor: str, reason: str) -> int:
    """Remove credits as a negative adjustment (one conditional UPDATE, never below zero)."""
    check_amount(amount)
    async with write_transaction():
        balance = await _move(user_id, -amount, require=amount)
        if balance is None:
            raise InsufficientCredits(amount, await balance_of(user_id))
        await _append(user_id, "adjustment", -amount, balance, actor=actor, reason=reason)
    return balance
