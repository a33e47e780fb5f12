"""Raw SQL that goes around the ledger code: to prove the database itself refuses what the code
never does, and to break the ledger on purpose (triggers bypassed) so that verify has work.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg

from service.core import db

WHEN = "'2026-01-01 00:00:00+00:00'"


def entry(
    kind: str,
    amount: int,
    *,
    user: str = "u1",
    generation: str | None = None,
    key: str | None = "auto",
    actor: str = "tester",
    balance_after: str | None = None,
) -> str:
    """An INSERT of one ledger entry; ``balance_after`` defaults to the account's stored balance."""
    if key == "auto":
        key = f"{kind}:{generation}" if kind in ("debit", "refund") else None
    gen = "NULL" if generation is None else f"'{generation}'"
    unique = "NULL" if key is None else f"'{key}'"
    after = balance_after or f"(SELECT balance FROM accounts WHERE user_id = '{user}')"
    return (
        "INSERT INTO ledger_entries (user_id, kind, amount, balance_after, generation_id, actor, reason, unique_key, "
        f"created_at) VALUES ('{user}', '{kind}', {amount}, {after}, {gen}, '{actor}', 'raw', {unique}, {WHEN})"
    )


def move(amount: int, user: str = "u1") -> str:
    return f"UPDATE accounts SET balance = balance + ({amount}) WHERE user_id = '{user}'"


class RawSQL:
    """Statements on a connection of their own, with no ledger code in the way.

    ``bypass_triggers`` switches off the triggers (not CHECK or UNIQUE constraints) for this
    connection only on PostgreSQL, and drops them from the test's own copy on SQLite.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = db.is_postgres(url)

    async def run(self, *statements: str, bypass_triggers: bool = False) -> list[dict[str, Any]]:
        if self.postgres:
            return await self._postgres(statements, bypass_triggers)
        return await asyncio.to_thread(self._sqlite, statements, bypass_triggers)

    async def _postgres(self, statements: tuple[str, ...], bypass: bool) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.url)
        try:
            if bypass:
                await conn.execute("SET session_replication_role = replica")
            rows: list[Any] = []
            async with conn.transaction():
                for sql in statements:
                    rows = await conn.fetch(sql)
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    def _sqlite(self, statements: tuple[str, ...], bypass: bool) -> list[dict[str, Any]]:
        conn = sqlite3.connect(str(db.sqlite_path(self.url)), timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            if bypass:
                names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
                for name in names:
                    conn.execute(f"DROP TRIGGER {name}")
            conn.execute("BEGIN IMMEDIATE")
            rows: list[Any] = []
            try:
                for sql in statements:
                    rows = conn.execute(sql).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return [dict(r) for r in rows]
        finally:
            conn.close()
