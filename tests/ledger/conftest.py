"""Ledger fixtures: the engine connected to the test's clean database, and raw SQL around it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.core import db
from tests.ledger.raw import RawSQL


@pytest.fixture
async def ledger_db(database_url: str) -> AsyncIterator[str]:
    """The test's clean, migrated database (SQLite or PostgreSQL), connected for the ledger code."""
    await db.connect(database_url, pool_size=20)
    try:
        yield database_url
    finally:
        await db.disconnect()


@pytest.fixture
def raw_sql(ledger_db: str) -> RawSQL:
    return RawSQL(ledger_db)
