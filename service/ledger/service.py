"""Money operations. Each one is a single transaction that moves the stored balance and appends
its entry together; the debit is one conditional UPDATE, never a read followed by a write.

Every operation updates the account row first: on PostgreSQL that row lock serializes all money
movements of one user, on SQLite the IMMEDIATE transaction holds the database's write lock. The
entry then records the balance the UPDATE returned, and the database checks that it continues
the account's chain of entries (see the ``ledger_invariants`` migration).

Operations nest: called inside an outer ``write_transaction`` (a generation created with its
debit, an admin action recorded with its refund) they join it, and all of it commits or none.
The ledger knows generations only by id: the rows they live in belong to ``service.generations``.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.core import pagination
from service.core.db import write_transaction
from service.core.errors import BadRequest, Conflict, InsufficientCredits
from service.ledger import postings, repository
from service.ledger.postings import EntryKind
from service.ledger.schemas import CreditsOut, EntryFilter, entry_out
from service.ledger.tables import Account, LedgerEntry

SYSTEM = "system"
MAX_AMOUNT = 10**12  # far below BigInt's range: no sum of entries can overflow


class AlreadyCharged(Conflict):
    """The generation already has its debit."""


class AlreadyRefunded(Conflict):
    """The generation already has its refund."""


class NeverCharged(Conflict):
    """The generation has no debit to refund."""


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


async def balance_of(user_id: str) -> int:
    rows = await Account.raw("SELECT balance FROM accounts WHERE user_id = {}", user_id)
    return rows[0]["balance"] if rows else 0


def check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise BadRequest(f"amount must be a positive integer not greater than {MAX_AMOUNT}")


async def debit(user_id: str, amount: int, *, generation_id: str, reason: str) -> int:
    """Charge ``amount`` for a generation (call it in the transaction that creates the generation's
    row: the database checks the debit matches it). Returns the balance after it.

    ``InsufficientCredits`` when the balance is short (a missing account has none);
    ``AlreadyCharged`` when the generation has its debit. Either way the transaction rolls back.
    """
    async with write_transaction():
        balance = await postings.move(user_id, -amount, require=amount)
        if balance is None:
            raise InsufficientCredits(amount, await balance_of(user_id))
        if (
            await postings.append(
                user_id, EntryKind.DEBIT, -amount, balance, actor=user_id, reason=reason, generation_id=generation_id
            )
            is None
        ):
            raise AlreadyCharged(f"Generation {generation_id} is already charged")
    return balance


async def refund(generation_id: str, *, actor: str, reason: str) -> Refund:
    """Refund a generation's debit in full, once (call it where the generation's row records it).

    The amount comes from the debit entry, which can never change (append-only); the balance
    moves relatively, and the unique refund key rejects a second refund: ``AlreadyRefunded``.
    ``NeverCharged`` when the generation has no debit.
    """
    async with write_transaction():
        charged = (
            await LedgerEntry.select(LedgerEntry.user_id, LedgerEntry.amount)
            .where(LedgerEntry.unique_key == f"{EntryKind.DEBIT}:{generation_id}")
            .first()
        )
        if charged is None:
            raise NeverCharged(f"Generation {generation_id} was never charged")
        user_id, amount = charged["user_id"], -charged["amount"]
        balance = await postings.move(user_id, amount)
        entry_id = (
            None
            if balance is None
            else await postings.append(
                user_id, EntryKind.REFUND, amount, balance, actor=actor, reason=reason, generation_id=generation_id
            )
        )
        if balance is None or entry_id is None:
            raise AlreadyRefunded(f"Generation {generation_id} is already refunded")
    return Refund(generation_id=generation_id, user_id=user_id, amount=amount, balance=balance, entry_id=entry_id)


async def add_credits(user_id: str, amount: int, *, actor: str, reason: str, kind: str = "grant") -> Movement:
    """Add credits (a grant or, with ``kind='adjustment'``, a correction)."""
    check_amount(amount)
    if kind not in (EntryKind.GRANT, EntryKind.ADJUSTMENT):
        raise BadRequest("kind must be grant or adjustment")
    async with write_transaction():
        await postings.ensure_account(user_id)
        balance = await postings.move(user_id, amount)
        if balance is None:  # unreachable: ensure_account ran in this transaction
            raise Conflict(f"Account {user_id} is missing")
        entry_id = await postings.append(user_id, EntryKind(kind), amount, balance, actor=actor, reason=reason)
    assert entry_id is not None  # only debits and refunds carry a unique key that can collide
    return Movement(balance=balance, entry_id=entry_id)


async def grant(user_id: str, amount: int, *, actor: str, reason: str, kind: str = "grant") -> int:
    """``add_credits`` answering just the new balance."""
    return (await add_credits(user_id, amount, actor=actor, reason=reason, kind=kind)).balance


async def deduct(user_id: str, amount: int, *, actor: str, reason: str) -> int:
    """Remove credits as a negative adjustment (one conditional UPDATE, never below zero)."""
    check_amount(amount)
    async with write_transaction():
        balance = await postings.move(user_id, -amount, require=amount)
        if balance is None:
            raise InsufficientCredits(amount, await balance_of(user_id))
        await postings.append(user_id, EntryKind.ADJUSTMENT, -amount, balance, actor=actor, reason=reason)
    return balance


async def credits_of(user_id: str, *, limit: int, cursor: str | None) -> CreditsOut:
    """A user's balance and a page of their entries, newest first (no account yet: 0.0, none)."""
    limit, after = pagination.check_limit(limit), pagination.decode(cursor)
    row = await repository.account(user_id)
    found = await repository.entries(EntryFilter(user_id=user_id), limit=limit + 1, cursor=after)
    rows, next_cursor = pagination.page(found, limit, repository.position)
    return CreditsOut(
        user_id=user_id,
        balance=float(row["balance"] if row else 0),
        entries=[entry_out(r) for r in rows],
        next_cursor=next_cursor,
    )
