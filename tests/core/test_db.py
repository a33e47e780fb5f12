"""The database's health is learnt from the pool's own connections, not from a probe per request."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.core import db


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_dropped_connection_is_probed_and_a_database_that_answers_stays_up(database_url: str) -> None:
    await db.connect(database_url, pool_size=2, name="video-gen-health-test")
    try:
        assert db.health.up
        await db.health.check()
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'video-gen-health-test'"
            )
        finally:
            await admin.close()
        await asyncio.sleep(0.1)  # the pool notices; its probe reconnects: the database is up
        await db.health.check()
        assert db.health.up
    finally:
        await db.disconnect()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_closing_the_pool_is_not_an_outage(database_url: str) -> None:
    await db.connect(database_url, pool_size=2)
    await db.disconnect()
    assert db.health.up
