"""A delivery's steps retried through outages: the first try in the job's own task, each retry
in a task of its own that starts from the context the first try had (a driver that died
mid-transaction leaves its transaction in the context it ran in)."""

from __future__ import annotations

import asyncio
import contextvars

from workers.handling import JobHandler

TRANSACTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("transaction", default=None)


async def test_a_retry_starts_from_the_context_before_the_first_try() -> None:
    seen: list[tuple[str | None, asyncio.Task[object] | None]] = []

    async def step() -> None:
        seen.append((TRANSACTION.get(), asyncio.current_task()))
        TRANSACTION.set(f"left by try {len(seen)}")  # what a dying driver leaves behind
        if len(seen) < 3:
            raise ConnectionResetError("the database went away")  # an outage: retried

    handler = object.__new__(JobHandler)  # ``_retrying`` needs nothing of the handler's
    own = asyncio.current_task()
    await handler._retrying(step)
    assert [transaction for transaction, _ in seen] == [None, None, None]
    assert seen[0][1] is own  # the happy path costs no task
    assert seen[1][1] is not own and seen[2][1] is not own and seen[1][1] is not seen[2][1]
