"""Where a generation's record and its money move together, each in one transaction.

- ``charge``: the record is created RUNNING with its debit; too little credit writes nothing (on
  PostgreSQL in one statement, ``charging.py``).
- ``fail``: the refund (when charged and not refunded yet) and the FAILED status commit together,
  so no state "failed, refund pending" ever exists, and a crash in between changes nothing.
- ``cancel``: the same as ``fail`` for a client's (or an admin's) cancel: RUNNING -> CANCELLED
  with its refund; a job no worker charged yet gets a CANCELLED record with nothing charged;
- ``refund_by_admin``: the refund and the record's ``credits_refunded`` together (the caller
  adds its audit record to the same transaction).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.core import metrics, tracing
from service.core.db import on_postgres, write_transaction
from service.core.errors import AppError, Cancelled, Conflict, NotFound
from service.generations import batched, repository, transitions
from service.generations.records import GenerationRecord, NewGeneration
from service.ledger import service as ledger


class AlreadyExists(Conflict):
    """The generation was created (and charged) by an earlier delivery of its job."""


@dataclass(frozen=True)
class Charged:
    record: GenerationRecord
    balance: int


async def charge(new: NewGeneration, *, cost: int, attempts: int) -> Charged:
    """Create the RUNNING record and debit ``cost`` for it, atomically.

    ``InsufficientCredits`` (nothing written) or ``AlreadyExists`` (the record is already there:
    resume it, never charge again; the insert comes first so that is what a retry sees).
    """
    with tracing.span("generation.charge", model=new.model, credits=cost):
        return await _charge(new, cost=cost, attempts=attempts)


async def _charge(new: NewGeneration, *, cost: int, attempts: int) -> Charged:
    if on_postgres():
        charged = await batched.charge(new, cost=cost, attempts=attempts)
        if charged is None:
            raise AlreadyExists(f"Generation {new.id} is already charged")
        metrics.CREDITS_DEBITED.labels(new.model).inc(cost)
        return Charged(*charged)
    async with write_transaction():
        record = await transitions.create_running(new, cost=cost, attempts=attempts)
        if record is None:
            raise AlreadyExists(f"Generation {new.id} is already charged")
        balance = (
            await ledger.debit(new.user_id, cost, generation_id=new.id, reason=f"generation {new.id}")
            if cost
            else await ledger.balance_of(new.user_id)
        )
    metrics.CREDITS_DEBITED.labels(new.model).inc(cost)
    return Charged(record, balance)


def _text(message: str | list[str]) -> str:
    return message if isinstance(message, str) else "; ".join(message)


async def fail(record: GenerationRecord, error: AppError) -> GenerationRecord:
    """RUNNING -> FAILED with its refund; the record as it ends (a terminal one stays as it is)."""
    message = _text(error.message)
    reason = f"generation failed: {message}"
    return await _end(record, error, transitions.fail, actor=ledger.SYSTEM, reason=reason, why="failure")


async def cancel(record: GenerationRecord, *, actor: str) -> GenerationRecord:
    """RUNNING -> CANCELLED with its refund (``actor`` cancelled it); the record as it ends: a
    terminal one (it succeeded or failed first) stays as it is."""
    reason = f"generation cancelled by {actor}"
    return await _end(record, Cancelled(), transitions.cancel, actor=actor, reason=reason, why="cancel")


async def cancel_queued(new: NewGeneration, *, submitted_at: datetime) -> bool:
    """(none) -> CANCELLED, nothing charged; False when a worker created the record first."""
    error = Cancelled()
    return await transitions.create_cancelled(
        new, error=_text(error.message), error_status=error.status_code, submitted_at=submitted_at
    )


async def _end(
    record: GenerationRecord, error: AppError, transition: _End, *, actor: str, reason: str, why: str
) -> GenerationRecord:
    message = _text(error.message)
    try:
        async with write_transaction():
            refunded = 0
            if record.credits_charged > 0:
                refunded = (await ledger.refund(record.id, actor=actor, reason=reason)).amount
            ended = await transition(record.id, error=message, error_status=error.status_code, refunded=refunded)
            if ended is None:
                raise _NotRunning
        if refunded:
            metrics.CREDITS_REFUNDED.labels(record.model, why).inc(refunded)
    except ledger.AlreadyRefunded:  # refunded while it ran (an admin, or a racing end): no second refund
        ended = await transition(
            record.id, error=message, error_status=error.status_code, refunded=record.credits_charged
        )
    except _NotRunning:  # already terminal: the transaction rolled back, including its refund
        ended = None
    if ended is None:
        current = await repository.get(record.id)
        assert current is not None
        return current
    return ended


class _NotRunning(Exception):
    pass


class _End(Protocol):
    def __call__(
        self, generation_id: str, *, error: str, error_status: int, refunded: int
    ) -> Awaitable[GenerationRecord | None]: ...


async def refund_by_admin(generation_id: str, *, admin_id: str, reason: str) -> ledger.Refund:
    """Refund a charged, unrefunded generation in full (409 otherwise, 404 when unknown).
    Call it inside the transaction that records the admin action."""
    async with write_transaction():
        record = await repository.get(generation_id)
        if record is None:
            raise NotFound(f"Generation {generation_id} not found")
        refund = await ledger.refund(generation_id, actor=admin_id, reason=reason)
        await repository.record_refund(generation_id, refund.amount)
    metrics.CREDITS_REFUNDED.labels(record.model, "admin").inc(refund.amount)
    return refund
