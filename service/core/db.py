"""The database engine: chosen from ``DATABASE_URL``, bound to every table, migrated by Piccolo.

``DATABASE_URL`` is a SQLite path (``var/video-gen.sqlite``, ``sqlite:///relative.db``,
``sqlite:////abs/path.db``) or a PostgreSQL URL (``postgresql://user@host:5432/db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import structlog
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from service.core.errors import DATABASE_UNREACHABLE, ServiceUnavailable

log = structlog.get_logger(__name__)
_engine: Engine | None = None
_engine_url: str | None = None
_users = 0  # API and workers may share one process (embedded stack): one pool, closed by the last


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def sqlite_path(url: str) -> Path:
    """The file a SQLite ``DATABASE_URL`` names (SQLAlchemy's slash convention, or a bare path)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://"):])
    return Path(url)


def make_engine(url: str) -> Engine:
    if is_postgres(url):
        return PostgresEngine(config={"dsn": url})
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several worker processes share one file: wait for the write lock instead of failing.
    return SQLiteEngine(path=str(path), timeout=60)


def configure(url: str) -> Engine:
    """Point every table (ours and Piccolo's migration table) at the database ``url``."""
    global _engine, _engine_url
    from service.piccolo_app import TABLES

    _engine, _engine_url = make_engine(url), url
    for table in [*TABLES, Migration]:
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


async def connect(url: str, *, pool_size: int = 10) -> Engine:
    """Configure and open the engine for a lifespan (a pool on PostgreSQL); shared when already open."""
    global _users
    if _users and _engine is not None and _engine_url == url:
        _users += 1
        return _engine
    engine = configure(url)
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(min_size=1, max_size=pool_size)
    else:
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    _users = 1
    return engine


async def disconnect() -> None:
    """Release one ``connect``; the last one closes the pool."""
    global _users
    _users = max(_users - 1, 0)
    if _users == 0 and isinstance(_engine, PostgresEngine) and _engine.pool is not None:
        await _engine.close_connection_pool()


async def migrate(url: str, *, quiet: bool = True) -> None:
    """Apply every pending Piccolo migration to ``url``."""
    import os

    from piccolo.apps.migrations.commands.forwards import run_forwards

    os.environ.setdefault("PICCOLO_CONF", "service.piccolo_conf")
    configure(url)
    sink = io.StringIO() if quiet else None
    with contextlib.redirect_stdout(sink) if sink else contextlib.nullcontext():
        result = await run_forwards(app_name="video_gen")
    if not result.success:
        raise RuntimeError(f"migration failed: {result.message}")


async def pending_migrations() -> list[str]:
    """Ids of the migrations in ``migrations/`` not yet applied to the configured database."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    from service.piccolo_app import APP_CONFIG

    modules = BaseMigrationManager().get_migration_modules(APP_CONFIG.migrations_folder_path)
    try:
        done = set(await Migration.get_migrations_which_ran(app_name="video_gen")) if await Migration.table_exists() else set()
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


async def ensure_database(timeout: float = 5.0) -> None:
    """503 unless the database answers. Tried twice: a pooled connection the server dropped
    fails once and is replaced, and that must not turn a healthy database into a 503."""
    for attempt in (1, 2):
        try:
            await asyncio.wait_for(current_engine().run_ddl("SELECT 1"), timeout)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if attempt == 2:
                log.warning("api.database_unreachable", error=str(exc) or type(exc).__name__)
                raise ServiceUnavailable(DATABASE_UNREACHABLE) from exc
