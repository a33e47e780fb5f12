"""The charge on both engines: PostgreSQL's one-statement function (``charging.py``) and SQLite's
transaction write the same record, debit and entry, and refuse the same way."""

from __future__ import annotations

import msgspec
import pytest

from service.core import db
from service.core.errors import InsufficientCredits
from service.generations import repository
from service.generations.settlement import AlreadyExists
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from tests.factories import charge


@pytest.fixture
async def charging_db(database_url: str):
    await db.connect(database_url)
    try:
        yield database_url
    finally:
        await db.disconnect()


async def test_the_record_returned_is_the_record_stored_and_the_entry_follows_it(charging_db: str) -> None:
    await ledger.grant("u1", 1000, actor="test", reason="fund")
    charged = await charge("g1", "u1", 750, idempotency_key="k1")
    stored = await repository.get("g1")
    assert stored is not None and msgspec.structs.asdict(stored) == msgspec.structs.asdict(charged.record)
    assert charged.balance == 250 == await ledger.balance_of("u1")
    [debit] = await LedgerEntry.select().where(LedgerEntry.kind == "debit")
    assert (debit["amount"], debit["balance_after"], debit["actor"], debit["unique_key"]) == (
        -750,
        250,
        "u1",
        "debit:g1",
    )
    assert debit["reason"] == "generation g1" and debit["generation_id"] == "g1"
    assert db.on_postgres() == charging_db.startswith("postgres")


async def test_a_free_generation_moves_nothing_and_a_short_balance_writes_nothing(charging_db: str) -> None:
    await ledger.grant("u1", 100, actor="test", reason="fund")
    free = await charge("free", "u1", 0)
    assert free.balance == 100 and await LedgerEntry.count().where(LedgerEntry.kind == "debit") == 0
    with pytest.raises(AlreadyExists):
        await charge("free", "u1", 0)
    with pytest.raises(InsufficientCredits, match="Required: 750, Available: 100.0"):
        await charge("dear", "u1", 750)
    assert await repository.get("dear") is None and await ledger.balance_of("u1") == 100
