"""A Piccolo transaction whose connection is given back even when its end fails.

Piccolo's ``__aexit__`` rolls back (or commits), then releases the connection to the pool and
resets the task's current transaction; when the rollback or the commit raises (the server ended
the connection mid-transaction: a PostgreSQL restart, an operator's ``pg_terminate_backend``),
neither happens. asyncpg then counts the connection as in use for ever when its protocol was
aborted (it leaves that cleanup to ``release``), and closing the pool, which waits for every
connection, never returns: a worker's or an embedded stack's shutdown hung that way.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any


class Transaction:
    """``async with Transaction(engine.transaction()):`` as Piccolo's, plus the clean-up above."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __aenter__(self) -> Any:
        return await self.inner.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return await self.inner.__aexit__(kind, error, tb)
        except BaseException:
            await self._give_back()
            raise

    async def _give_back(self) -> None:
        inner = self.inner
        if getattr(inner, "_parent", None) is not None:
            return  # a nested transaction: the outer one owns the connection
        connection, pool = getattr(inner, "connection", None), getattr(inner.engine, "pool", None)
        with contextlib.suppress(Exception):
            if pool is not None:
                await pool.release(connection)  # a closed connection is terminated, its slot freed
            elif connection is not None:
                await connection.close()
        with contextlib.suppress(Exception):
            inner.engine.current_transaction.reset(inner.context)
