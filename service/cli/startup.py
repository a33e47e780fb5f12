"""What a command checks before it starts: settings, models, database, storage, token algorithms.

Each check ends a refused start the same way, one line on stderr and exit status 2, so an operator
reads the variable to fix instead of a traceback from deep inside a server's start-up."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import NoReturn

import click

from service.core.settings import Settings, SettingsError

# A configuration the process refuses to start with (sysexits' EX_CONFIG is 78; 2 is click's usage).
EXIT_CONFIG = 2


def refuse(message: str) -> NoReturn:
    """Print one line and exit non-zero: how every start-up refusal ends."""
    click.echo(f"video-gen: {message}", err=True)
    sys.exit(EXIT_CONFIG)


def load_settings(*, check: bool | None = None) -> Settings:
    """The environment's settings; ``check``: validate them for a server (False) or the embedded
    stack (True); None reads them only (``token``, ``models``)."""
    from service.core.checks import check_settings

    try:
        settings = Settings.from_env()
        if check is not None:
            check_settings(settings, embedded=check)
    except SettingsError as exc:
        refuse(str(exc))
    return settings


def require_models(settings: Settings) -> None:
    """The plugins load and the default model is one of them."""
    from models_registry.registry import ModelRegistry, PluginError
    from service.core.checks import check_default_model

    try:  # a plugin's own settings (FAL_*, LOCAL_MODEL_*) are read as the registry creates it
        check_default_model(settings, ModelRegistry.load().names())
    except (SettingsError, PluginError) as exc:
        refuse(str(exc))


async def open_database(settings: Settings, *, migrate: bool = False) -> None:
    """Check at start that the database answers (and is migrated): one line and exit if not."""
    from service.core import db
    from service.core.db_refusals import describe_connect_error

    try:
        logging.getLogger("piccolo").setLevel(logging.WARNING)  # not "Running Postgres version 0.0"
        if migrate:
            await db.migrate(settings.database_url, quiet=False)
            return
        await db.connect(settings.database_url, pool_size=1)
    except (TimeoutError, OSError, *_database_errors()) as exc:
        refuse(describe_connect_error(settings.database_url, exc))
    try:
        await db.require_migrated()
    finally:
        await db.disconnect()


def _database_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error)


async def check_storage(settings: Settings) -> None:
    """A missing bucket is found at start (one line, exit); a store that does not answer yet is
    only reported, since a process manager may start us before it (``/health/ready`` says so)."""
    from service.storage.factory import storage_from_settings
    from service.storage.s3_errors import BucketMissing

    store = storage_from_settings(settings)
    try:
        await store.open()
        await asyncio.wait_for(store.check(), 15)
    except BucketMissing as exc:
        refuse(
            f"STORAGE_URL names the bucket {exc.bucket!r}, which does not exist: create it, or fix STORAGE_URL "
            "(and S3_ENDPOINT_URL)"
        )
    except Exception as exc:
        click.echo(f"video-gen: warning: the storage does not answer yet: {str(exc) or type(exc).__name__}", err=True)
    finally:
        await store.close()


def warn_if_hs256_refused(settings: Settings) -> None:
    """With an identity provider configured, HS256 is accepted only when JWT_ALGORITHMS lists it."""
    from service.core.tokens import TokenVerifier

    try:
        algorithms = TokenVerifier(settings).algorithms
    except SettingsError as exc:
        refuse(str(exc))
    if "HS256" not in algorithms:
        click.echo(
            f"warning: this API accepts {', '.join(algorithms)} only; HS256 tokens from here are refused "
            "unless JWT_ALGORITHMS lists HS256",
            err=True,
        )


async def until_signal() -> None:
    """Return on SIGTERM or SIGINT: how the embedded stack is kept running."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
