"""The charge on PostgreSQL in one round trip: the ``charge_generation`` function (see its
migration) inserts the RUNNING record, takes the credits and appends the debit in one statement,
which the database's ledger triggers check row by row as they check the transaction ``settlement``
runs on SQLite. One call instead of BEGIN, three statements and COMMIT."""

from __future__ import annotations

from asyncpg.exceptions import PostgresError

from service.core.errors import InsufficientCredits
from service.generations.records import GenerationRecord, NewGeneration, running_record
from service.generations.repository import now
from service.generations.tables import Generation
from service.ledger import service as ledger

_CHARGE = "SELECT charge_generation({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) AS balance"
SHORT, CHARGED = "VGI01", "VGI02"  # the function's own SQLSTATEs


async def charge_in_one_call(new: NewGeneration, *, cost: int, attempts: int) -> tuple[GenerationRecord, int] | None:
    """The new RUNNING record and the balance after its debit; None when the generation exists
    (an earlier delivery charged it). ``InsufficientCredits`` or ``AlreadyCharged``: nothing written."""
    at = now()
    args = (cost, attempts, new.idempotency_key, f"generation {new.id}", at)
    try:
        rows = await Generation.raw(_CHARGE, *new.request(), *args)
    except PostgresError as exc:
        if exc.sqlstate == SHORT:
            raise InsufficientCredits(cost, await ledger.balance_of(new.user_id)) from None
        if exc.sqlstate == CHARGED:
            raise ledger.AlreadyCharged(f"Generation {new.id} is already charged") from None
        raise
    balance = rows[0]["balance"]
    if balance is None:
        return None
    return running_record(new, cost=cost, attempts=attempts, ts=at), balance
