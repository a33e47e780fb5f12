"""A transaction whose rollback fails (its connection was lost mid-way) still gives its connection
back, so that closing the pool at shutdown returns."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.core import db
from service.generations.tables import Generation


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_transaction_whose_connection_died_gives_it_back_and_the_pool_closes(database_url: str) -> None:
    await db.connect(database_url, pool_size=2, name="video-gen-transaction-test")
    try:
        with pytest.raises(asyncpg.InterfaceError):  # the rollback's own error: the connection is gone
            async with db.write_transaction():
                await Generation.raw("SELECT 1")
                transaction = db.current_engine().current_transaction.get()
                # The state asyncpg leaves after a protocol error (an unexpected message from a
                # backend being terminated): aborted, its pool slot not returned by itself.
                transaction.connection._con._abort()
                raise RuntimeError("the work failed")
        assert db.current_engine().current_transaction.get() is None  # the next one starts clean
        async with db.write_transaction():
            assert (await Generation.raw("SELECT 1 AS one"))[0]["one"] == 1
    finally:
        # Before the fix this waited for the dead connection for ever; the bound is a safety net.
        await asyncio.wait_for(db.disconnect(), 30)
