"""A job's two statements on PostgreSQL, the charge and the SUCCEEDED transition, group-committed:
while one round trip is in flight, the jobs that reach the same point queue and go together in the
next one (``service/core/group_commit.py``), so one statement carries many jobs.

Each job gets exactly what the single statement gives it: ``charge`` the record and balance, None
when the generation exists, ``InsufficientCredits`` or ``AlreadyCharged`` (nothing written);
``succeed`` the SUCCEEDED record with the owner's balance, or None when the record was no longer
RUNNING. A statement the server refuses wrote nothing, so each of its items is then written alone
and only the item at fault fails; an outage fails the batch's callers, who retry their deliveries.
SQLite runs the single statements (``charging.py`` is PostgreSQL only; ``transitions.succeed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec
from asyncpg.exceptions import PostgresError

from service.core.db import on_postgres
from service.core.errors import InsufficientCredits
from service.core.group_commit import GroupCommit, PerLoop
from service.core.transient import is_transient
from service.generations import charging, transitions
from service.generations.records import GenerationRecord, NewGeneration, running_record
from service.generations.repository import now
from service.generations.tables import Generation
from service.generations.transitions import Succeeded
from service.ledger import service as ledger

MAX_ITEMS = 64  # a charge holds one subtransaction id per item; PostgreSQL caches 64 per backend

_CHARGE_MANY = (
    "SELECT item, after, refused FROM charge_generations("
    "{}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], "
    "{}::bigint[], {}::integer[], {}::text[], {}::text[], {}::timestamptz[])"
)
# RUNNING -> SUCCEEDED for each row still RUNNING, with its owner's balance (the migration
# ``trigger_plans``: one statement, planned with key lookups only).
_SUCCEED_MANY = (
    "SELECT id, balance FROM succeed_generations({}::text[], {}::text[], {}::real[], {}::bigint[], {}::timestamptz[])"
)


def rolled_back(exc: BaseException) -> bool:
    """The server refused the statement (so it wrote nothing), for a reason no retry mends."""
    return isinstance(exc, PostgresError) and not is_transient(exc)


@dataclass(frozen=True)
class _Charge:
    new: NewGeneration
    cost: int
    attempts: int
    at: datetime

    def row(self) -> tuple[object, ...]:
        """The arguments of ``charge_generation`` for this item, in its order."""
        reason = f"generation {self.new.id}"
        return (*self.new.request(), self.cost, self.attempts, self.new.idempotency_key, reason, self.at)


ChargeOutcome = tuple[GenerationRecord, int] | None


async def _charge_many(items: list[_Charge]) -> list[ChargeOutcome | BaseException]:
    columns = [list(column) for column in zip(*(item.row() for item in items))]
    rows = await Generation.raw(_CHARGE_MANY, *columns)
    outcomes: list[ChargeOutcome | BaseException] = [RuntimeError("charge_generations skipped an item")] * len(items)
    for row in rows:
        item = items[row["item"] - 1]
        outcomes[row["item"] - 1] = _charge_outcome(item, row["after"], row["refused"])
    return outcomes


def _charge_outcome(item: _Charge, after: int | None, refused: str | None) -> ChargeOutcome | BaseException:
    if refused == charging.SHORT:
        return InsufficientCredits(item.cost, after or 0)
    if refused == charging.CHARGED:
        return ledger.AlreadyCharged(f"Generation {item.new.id} is already charged")
    if after is None:
        return None
    return running_record(item.new, cost=item.cost, attempts=item.attempts, ts=item.at), after


@dataclass(frozen=True)
class _Success:
    record: GenerationRecord
    output_key: str
    duration_seconds: float
    generation_ms: int
    finished_at: datetime

    def done(self, balance: int | None) -> Succeeded:
        record = msgspec.structs.replace(
            self.record,
            status=transitions.SUCCEEDED,
            output_key=self.output_key,
            duration_seconds=self.duration_seconds,
            generation_ms=self.generation_ms,
            finished_at=self.finished_at,
        )
        return Succeeded(record, int(balance or 0))


async def _succeed_many(items: list[_Success]) -> list[Succeeded | None]:
    # One job's id twice in a batch (two deliveries): the first is sent, the later ones find the
    # record no longer RUNNING, as they would one statement after the other.
    first = list({item.record.id: item for item in reversed(items)}.values())
    first.sort(key=lambda item: item.record.id)  # rows locked in id order by every batch: no lock cycle
    columns = (
        [item.record.id for item in first],
        [item.output_key for item in first],
        [item.duration_seconds for item in first],
        [item.generation_ms for item in first],
        [item.finished_at for item in first],
    )
    rows = await Generation.raw(_SUCCEED_MANY, *columns)
    balances = {row["id"]: row["balance"] for row in rows}
    sent = {id(item) for item in first}
    return [
        item.done(balances[item.record.id]) if id(item) in sent and item.record.id in balances else None
        for item in items
    ]


_charges: PerLoop[GroupCommit[_Charge, ChargeOutcome]] = PerLoop(
    lambda: GroupCommit(_charge_many, max_items=MAX_ITEMS, split=rolled_back, name="charge-batch")
)
_successes: PerLoop[GroupCommit[_Success, Succeeded | None]] = PerLoop(
    lambda: GroupCommit(_succeed_many, max_items=MAX_ITEMS, split=rolled_back, name="succeed-batch")
)


def charges() -> GroupCommit[_Charge, ChargeOutcome]:
    """This loop's charge batcher (tests count its round trips)."""
    return _charges.get()


def successes() -> GroupCommit[_Success, Succeeded | None]:
    """This loop's SUCCEEDED batcher (tests count its round trips)."""
    return _successes.get()


async def charge(new: NewGeneration, *, cost: int, attempts: int) -> ChargeOutcome:
    """PostgreSQL only (SQLite charges in a transaction, ``settlement``): ``charging.charge_in_one_call``
    with the jobs charging at the same time."""
    return await charges().submit(_Charge(new, cost, attempts, now()))


async def succeed(
    record: GenerationRecord, *, output_key: str, duration_seconds: float, generation_ms: int
) -> Succeeded | None:
    """RUNNING -> SUCCEEDED (``transitions.succeed``), with the jobs succeeding at the same time."""
    if not on_postgres():
        return await transitions.succeed(
            record, output_key=output_key, duration_seconds=duration_seconds, generation_ms=generation_ms
        )
    return await successes().submit(_Success(record, output_key, duration_seconds, generation_ms, now()))
