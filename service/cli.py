"""``video-gen``: the one console entry point (serve, api, worker, demo, migrate, token, probe...)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from datetime import timedelta
from typing import NoReturn

import click

from service.core.settings import Settings, SettingsError

# A configuration the process refuses to start with (sysexits' EX_CONFIG is 78; 2 is click's usage).
EXIT_CONFIG = 2


def refuse(message: str) -> NoReturn:
    """Print one line and exit non-zero: how every start-up refusal ends."""
    click.echo(f"video-gen: {message}", err=True)
    sys.exit(EXIT_CONFIG)


def _settings(*, check: bool | None = None) -> Settings:
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


def _require_models(settings: Settings) -> None:
    from models_registry.registry import ModelRegistry, PluginError
    from service.core.checks import check_default_model

    try:  # a plugin's own settings (FAL_*, LOCAL_MODEL_*) are read as the registry creates it
        check_default_model(settings, ModelRegistry.load().names())
    except (SettingsError, PluginError) as exc:
        refuse(str(exc))


async def _open_database(settings: Settings, *, migrate: bool = False) -> None:
    """Check at start that the database answers (and is migrated): one line and exit if not."""
    from service.core import db
    from service.core.checks import describe_connect_error

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


async def _check_storage(settings: Settings) -> None:
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


def _database_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@click.group()
def main() -> None:
    """video-gen: image-to-video generation service."""
    from service.core.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)  # one pipeline for every command


@main.command()
@click.option("--workers", default=1, show_default=True, help="Worker pools in this process.")
def serve(workers: int) -> None:
    """Run the embedded stack (SQLite, child redis-server, local storage, API, workers) until Ctrl-C."""
    from service.core.auth import make_token
    from service.embedded import DEMO_IMAGE_KEY, DEMO_USER, embedded_stack, seed_demo

    settings = _settings(check=True)
    _require_models(settings)
    _warn_if_hs256_refused(settings)

    async def run() -> None:
        async with embedded_stack(settings, workers=workers) as stack:
            if settings.storage_url.startswith("file:"):
                await seed_demo(stack.settings, credits=10 * 750)
            token = make_token(settings.jwt_secret, DEMO_USER, ttl=timedelta(days=1))
            admin = make_token(settings.jwt_secret, "admin", roles=["admin"], ttl=timedelta(hours=12))
            click.echo(f"video-gen is running at {stack.url}  (API docs: {stack.url}/schema)")
            click.echo(
                f"operator console (signs you in as 'admin', 12 h):\n{stack.url}/console/sign-in#token={admin}\n"
            )
            click.echo(f"demo user {DEMO_USER!r}, token (24 h):\n{token}\n")
            click.echo(
                f'curl -X POST "{stack.url}/video-gen/image-to-video" -H "Content-Type: application/json" '
                f'-H "Authorization: Bearer {token}" '
                f'-d \'{{"id": "{DEMO_IMAGE_KEY}", "prompt": "A beautiful sunset over the ocean with gentle waves", '
                f'"duration": "8s", "projectId": "project-456"}}\''
            )
            await _until_signal()
            click.echo("stopping ...")

    asyncio.run(run())


@main.command()
def api() -> None:
    """Run the API alone (needs REDIS_URL; workers run separately)."""
    import uvicorn

    from service.app import create_app
    from service.core.http import json_error_protocol, lean_proxy_headers

    settings = _settings(check=False)
    _require_models(settings)
    app = create_app(settings)
    asyncio.run(_open_database(settings))  # refuse plainly here rather than inside the server's lifespan
    asyncio.run(_check_storage(settings))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # uvicorn's records go through our pipeline (service.core.logging)
        access_log=False,  # one access line per request: service.core.request_context writes it
        loop="uvloop" if settings.event_loop == "uvloop" else "asyncio",
        http=json_error_protocol(settings.http_parser, settings.http_read_timeout_seconds),
        timeout_keep_alive=settings.http_keep_alive_seconds,
        # A client that stops reading a response (a browser's paused <video>) must not hold shutdown forever.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    server = uvicorn.Server(lean_proxy_headers(config))  # uvicorn.run's, with core.http's ProxyHeaders
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


@main.command()
def worker() -> None:
    """Run one worker process (up to WORKER_CONCURRENCY jobs at once; needs REDIS_URL)."""
    from workers.main import run_worker

    settings = _settings(check=False)
    _require_models(settings)
    asyncio.run(_check_storage(settings))
    settings.run(run_worker(settings))


@main.command()
def demo() -> None:
    """Run one image-to-video request through the embedded stack and print the answer."""
    from service.demo import run_demo

    _settings(check=True)  # the environment's other settings must still make sense
    sys.exit(asyncio.run(run_demo()))


@main.command()
def migrate() -> None:
    """Apply pending database migrations (DATABASE_URL)."""
    from service.core.checks import check_database_url

    settings = _settings()
    try:
        check_database_url(settings.database_url)
    except SettingsError as exc:
        refuse(str(exc))
    asyncio.run(_open_database(settings, migrate=True))
    click.echo(f"migrated {settings.database_url}")


@main.command()
@click.argument("user_id")
@click.option("--admin", is_flag=True, help="Add the admin role.")
@click.option("--hours", default=24, show_default=True)
def token(user_id: str, admin: bool, hours: int) -> None:
    """Print a JWT for USER_ID signed with JWT_SECRET (HS256, for the embedded stack and tests)."""
    from service.core.auth import make_token

    settings = _settings()
    _warn_if_hs256_refused(settings)
    click.echo(make_token(settings.jwt_secret, user_id, roles=["admin"] if admin else [], ttl=timedelta(hours=hours)))


def _warn_if_hs256_refused(settings: Settings) -> None:
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


@main.command()
def models() -> None:
    """List the installed model plugins."""
    from models_registry.registry import ModelRegistry

    for entry in ModelRegistry.load().catalogue():
        state = f"unavailable ({entry.unavailable_reason})" if entry.unavailable_reason else "available"
        options = ",".join(o.name for o in entry.options) or "none"
        click.echo(
            f"{entry.name:12} {state} durations={','.join(entry.durations)} default={entry.default_duration} "
            f"cost={entry.cost} options={options} from {entry.package}"
        )


@main.command()
@click.argument("role", type=click.Choice(["api", "worker"]))
def probe(role: str) -> None:
    """Health check of this host's API or worker (exit 0 healthy, 1 not): containers' HEALTHCHECK."""
    from service.health.probe import probe_api, probe_worker

    settings = _settings()
    ok, detail = probe_api(settings) if role == "api" else asyncio.run(probe_worker(settings))
    click.echo(f"{role} {'healthy' if ok else 'UNHEALTHY'}: {detail}")
    sys.exit(0 if ok else 1)


def _add_operator_commands() -> None:
    from service.admin.cli import credits, ledger

    main.add_command(credits)
    main.add_command(ledger)


_add_operator_commands()


if __name__ == "__main__":
    main()
