"""``video-gen``: the one console entry point (serve, api, worker, demo, migrate, token, probe...)."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

import click

from service.core.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@click.group()
def main() -> None:
    """video-gen: image-to-video generation service."""


@main.command()
@click.option("--workers", default=1, show_default=True, help="Worker pools in this process.")
def serve(workers: int) -> None:
    """Run the embedded stack (SQLite, child redis-server, local storage, API, workers) until Ctrl-C."""
    from service.core.auth import make_token
    from service.embedded import DEMO_IMAGE_KEY, DEMO_USER, embedded_stack, seed_demo

    async def run() -> None:
        settings = _settings()
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
    from service.core import db

    settings = _settings()
    app = create_app(settings)

    async def check() -> None:  # refuse plainly here rather than inside the server's lifespan
        await db.connect(settings.database_url, pool_size=1)
        try:
            await db.require_migrated()
        finally:
            await db.disconnect()

    asyncio.run(check())
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        loop="uvloop" if settings.event_loop == "uvloop" else "asyncio",
        http=settings.http_parser,
    )


@main.command()
def worker() -> None:
    """Run one worker process (up to WORKER_CONCURRENCY jobs at once; needs REDIS_URL)."""
    from workers.main import run_worker

    settings = _settings()
    settings.run(run_worker(settings))


@main.command()
def demo() -> None:
    """Run one image-to-video request through the embedded stack and print the answer."""
    from service.demo import run_demo

    sys.exit(asyncio.run(run_demo()))


@main.command()
def migrate() -> None:
    """Apply pending database migrations (DATABASE_URL)."""
    from service.core import db

    async def run() -> None:
        settings = _settings()
        await db.migrate(settings.database_url, quiet=False)
        click.echo(f"migrated {settings.database_url}")

    asyncio.run(run())


@main.command()
@click.argument("user_id")
@click.option("--admin", is_flag=True, help="Add the admin role.")
@click.option("--hours", default=24, show_default=True)
def token(user_id: str, admin: bool, hours: int) -> None:
    """Print a JWT for USER_ID signed with JWT_SECRET."""
    from service.core.auth import make_token

    click.echo(
        make_token(_settings().jwt_secret, user_id, roles=["admin"] if admin else [], ttl=timedelta(hours=hours))
    )


@main.command()
def models() -> None:
    """List the installed model plugins."""
    from models_registry.registry import ModelRegistry

    for entry in ModelRegistry.load().catalogue():
        click.echo(
            f"{entry.name:12} durations={','.join(entry.durations)} default={entry.default_duration} "
            f"cost={entry.cost} from {entry.package}"
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
