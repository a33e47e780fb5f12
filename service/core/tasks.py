"""Ending background tasks whose cancellation may be swallowed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import structlog

log = structlog.get_logger(__name__)


async def cancel_until_done(tasks: Iterable[asyncio.Task[object]], timeout: float, *, owner: str) -> None:
    """Cancel ``tasks`` again and again until they end, for at most ``timeout`` seconds.

    A cancellation can be swallowed inside redis-py: it writes every command through
    ``asyncio.wait_for`` (a socket timeout is set), and on Python 3.11 ``wait_for`` returns the
    inner result when that finished in the same loop round as the cancel (CPython gh-86296, fixed
    in 3.12); a command cancelled while its connection is released or reconnected can also raise
    its own error instead. A loop then goes on; one ``cancel()`` and an unbounded wait hung the
    API's shutdown that way, and could hang a worker's (``Scheduler.shutdown``, its lease renewal).
    """
    deadline = time.monotonic() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.1, max(deadline - time.monotonic(), 0)))
    if pending:
        log.warning("tasks.stop_timeout", owner=owner, tasks=sorted(t.get_name() for t in pending))
