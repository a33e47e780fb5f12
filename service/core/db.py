"""The database engine: chosen from ``DATABASE_URL``, bound to every table, migrated by Piccolo.

``DATABASE_URL`` is a SQLite URL (``sqlite:///relative.db``, ``sqlite:////abs/path.db``) or a
PostgreSQL URL (``postgresql://user@host:5432/db``); anything else is refused, never guessed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import structlog
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.table import Table

from service.core.errors import DATABASE_UNREACHABLE, ServiceUnavailable

log = structlog.get_logger(__name__)
_engine: Engine | None = None
_engine_url: str | None = None
_users = 0  # API and workers may share one process (embedded stack): one pool, closed by the last


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///`` URL names (SQLAlchemy's slash convention)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise ValueError(f"DATABASE_URL must be sqlite:///path, postgresql://... or postgres://..., got {url!r}")
    return Path(url[len("sqlite:///") :])


def make_engine(url: str) -> Engine:
    if is_postgres(url):
        # Piccolo probes the server's version here and warns in colour when it cannot: a database
        # that is away is reported by whoever connects next, in one line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return PostgresEngine(config={"dsn": url})
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several worker processes share one file: wait for the write lock instead of failing.
    return SQLiteEngine(path=str(path), timeout=60)


def _tables() -> list[type[Table]]:
    """Every table class defined so far (ours, Piccolo's migration table, and their subclasses)."""
    found, todo = [], list(Table.__subclasses__())
    while todo:
        table = todo.pop()
        found.append(table)
        todo.extend(table.__subclasses__())
    return found


def configure(url: str) -> Engine:
    """Point every table at the database ``url``.

    Tables defined later find it through ``PICCOLO_CONF`` (``service.piccolo_conf``), which
    resolves to the engine configured here.
    """
    global _engine, _engine_url
    os.environ.setdefault("PICCOLO_CONF", "service.piccolo_conf")
    _engine, _engine_url = make_engine(url), url
    for table in _tables():
        table._meta.db = _engine
    return _engine


def current_engine() -> Engine:
    if _engine is None:
        from service.core.settings import Settings

        return configure(Settings.from_env().database_url)
    return _engine


def write_transaction():
    """A transaction that takes the write lock up front (SQLite) so concurrent writers queue."""
    engine = current_engine()
    if isinstance(engine, SQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate)
    return engine.transaction()


async def _keep_session(connection: object) -> None:
    """Release without asyncpg's reset query (``RESET ALL; UNLISTEN *; ...``), one round trip saved
    per release: nothing here changes session state, and asyncpg still rolls back a transaction
    left open before calling this."""


async def connect(url: str, *, pool_size: int = 10, name: str = "video-gen") -> Engine:
    """Configure and open the engine for a lifespan (a pool on PostgreSQL); shared when already open.

    ``name`` is the connections' ``application_name`` (what ``pg_stat_activity`` shows).
    """
    global _users
    if _users and _engine is not None and _engine_url == url:
        _users += 1
        return _engine
    engine = configure(url)
    health.reset()
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(
            min_size=1,
            max_size=pool_size,
            reset=_keep_session,
            init=health.watch,
            max_inactive_connection_lifetime=0,
            server_settings={"application_name": name},
        )
    else:
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    _users = 1
    return engine


async def disconnect() -> None:
    """Release one ``connect``; the last one closes the pool."""
    global _users
    _users = max(_users - 1, 0)
    if _users == 0:
        health.closing()
        if isinstance(_engine, PostgresEngine) and _engine.pool is not None:
            await _engine.close_connection_pool()


class DatabaseHealth:
    """Whether the database answers, learnt from the pool's own failures rather than a probe per
    request. A pooled connection that dies (the server, the network, or an operator dropped it)
    starts a probe on a fresh connection; requests meanwhile wait for its verdict (a few
    milliseconds when the database is up). While it is down, a probe every ``interval`` seconds
    brings it back. The pool never closes idle connections itself
    (``max_inactive_connection_lifetime=0``), so a dropped one always means something.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.up = interval, True
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
                await asyncio.wait_for(current_engine().run_ddl("SELECT 1"), self.interval * 4)
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


health = DatabaseHealth()


async def migrate(url: str, *, quiet: bool = True) -> None:
    """Apply every pending Piccolo migration to ``url``."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    configure(url)
    sink = io.StringIO() if quiet else None
    with contextlib.redirect_stdout(sink) if sink else contextlib.nullcontext():
        result = await run_forwards(app_name="video_gen")
    if not result.success:
        raise RuntimeError(f"migration failed: {result.message}")


async def pending_migrations() -> list[str]:
    """Ids of the migrations in ``migrations/`` not yet applied to the configured database."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    import migrations

    modules = BaseMigrationManager().get_migration_modules(str(Path(migrations.__file__).parent))
    try:
        done = (
            set(await Migration.get_migrations_which_ran(app_name="video_gen"))
            if await Migration.table_exists()
            else set()
        )
    except Exception as exc:
        raise ServiceUnavailable(f"Database unavailable: {exc}") from exc
    return sorted(set(modules) - done)


async def require_migrated() -> None:
    """Refuse to start on an unmigrated database, saying what to run."""
    pending = await pending_migrations()
    if pending:
        raise SystemExit(
            f"The database is not migrated ({len(pending)} pending: {', '.join(pending)}). "
            "Run `video-gen migrate` first."
        )
