"""Whether the database answers: ``DatabaseHealth``, fed by the pool's own failures (``db.health``
is the process's one instance)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from piccolo.engine.base import Engine

from service.core.errors import DATABASE_UNREACHABLE, ServiceUnavailable

log = structlog.get_logger(__name__)


class DatabaseHealth:
    """Whether the database answers, learnt from the pool's own failures rather than a probe per
    request. A pooled connection that dies (the server, the network, or an operator dropped it)
    starts a probe on a fresh connection; requests meanwhile wait for its verdict (a few
    milliseconds when the database is up). While it is down, a probe every ``interval`` seconds
    brings it back. The pool never closes idle connections itself
    (``max_inactive_connection_lifetime=0``), so a dropped one always means something.
    """

    def __init__(self, engine: Callable[[], Engine], interval: float = 0.5) -> None:
        """``engine``: the engine to probe, looked up at each probe (``db.current_engine``)."""
        self.engine, self.interval, self.up = engine, interval, True
        self._probe: asyncio.Task[None] | None = None
        self._verdict: asyncio.Future[bool] | None = None
        self._closing = False

    def reset(self) -> None:
        self.up, self._closing = True, False

    def closing(self) -> None:
        self._closing = True
        if self._probe is not None:
            self._probe.cancel()

    async def watch(self, connection: Any) -> None:
        """asyncpg's ``init`` of every new pooled connection: report its loss."""
        connection.add_termination_listener(lambda _: self.lost())

    def lost(self, error: BaseException | None = None) -> None:
        """A connection died, or a query could not reach the server: find out whether it is down."""
        if self._closing or (self._probe is not None and not self._probe.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._verdict = loop.create_future()
        self._probe = loop.create_task(self._until_up(self._verdict, error), name="database-probe")

    async def _until_up(self, verdict: asyncio.Future[bool], error: BaseException | None) -> None:
        while not self._closing:
            answered, error = await self._select_one(error)
            if not verdict.done():
                verdict.set_result(answered)
            if answered:
                if not self.up:
                    log.info("database.reachable")
                self.up = True
                return
            if self.up:
                log.warning("database.unreachable", error=str(error) or type(error).__name__)
            self.up = False
            await asyncio.sleep(self.interval)

    async def _select_one(self, error: BaseException | None) -> tuple[bool, BaseException | None]:
        for _ in range(2):  # a connection killed under the probe is not an outage; two in a row are
            try:
                await asyncio.wait_for(self.engine().run_ddl("SELECT 1"), self.interval * 4)
                return True, None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
        return False, error

    async def check(self) -> None:
        """503 while the database is known to be unreachable (waiting for a probe under way)."""
        verdict = self._verdict
        if verdict is not None and not verdict.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(verdict), self.interval * 4)
        if not self.up:
            raise ServiceUnavailable(DATABASE_UNREACHABLE)
