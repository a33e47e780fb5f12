"""The database engine: chosen from ``DATABASE_URL``, bound to every table, migrated by Piccolo.

Whether it answers is ``health`` (``db_health.py``).

``DATABASE_URL`` is a SQLite URL (``sqlite:///relative.db``, ``sqlite:////abs/path.db``) or a
PostgreSQL URL (``postgresql://user@host:5432/db``); anything else is refused, never guessed at.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.table import Table

from service.core.db_health import DatabaseHealth
from service.core.errors import ServiceUnavailable

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


def on_postgres() -> bool:
    """Whether the configured engine is PostgreSQL (some writes have a one-statement form there)."""
    return isinstance(current_engine(), PostgresEngine)


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


health = DatabaseHealth(current_engine)


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
