"""The long-running commands: ``serve`` (the embedded stack), ``api`` and ``worker``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import timedelta

import click

from service.cli.startup import (
    check_storage,
    load_settings,
    open_database,
    require_models,
    until_signal,
    warn_if_hs256_refused,
)
from service.core import heap
from service.core.settings import Settings


@click.command()
@click.option("--workers", default=1, show_default=True, help="Worker pools in this process.")
def serve(workers: int) -> None:
    """Run the embedded stack (SQLite, child redis-server, local storage, API, workers) until Ctrl-C."""
    from service.embedded import embedded_stack, seed_demo

    settings = load_settings(check=True)
    require_models(settings)
    warn_if_hs256_refused(settings)

    async def run() -> None:
        async with embedded_stack(settings, workers=workers) as stack:
            if settings.storage_url.startswith("file:"):
                await seed_demo(stack.settings, credits=10 * 750)
            _print_welcome(settings, stack.url)
            await until_signal()
            click.echo("stopping ...")

    asyncio.run(run())


def _print_welcome(settings: Settings, url: str) -> None:
    """Where the embedded stack runs, a console sign-in link, a demo token and a curl line to try."""
    from service.core.auth import make_token
    from service.embedded import DEMO_IMAGE_KEY, DEMO_USER

    token = make_token(settings.jwt_secret, DEMO_USER, ttl=timedelta(days=1))
    admin = make_token(settings.jwt_secret, "admin", roles=["admin"], ttl=timedelta(hours=12))
    click.echo(f"video-gen is running at {url}  (API docs: {url}/schema)")
    click.echo(f"operator console (signs you in as 'admin', 12 h):\n{url}/console/sign-in#token={admin}\n")
    click.echo(f"demo user {DEMO_USER!r}, token (24 h):\n{token}\n")
    click.echo(
        f'curl -X POST "{url}/video-gen/image-to-video" -H "Content-Type: application/json" '
        f'-H "Authorization: Bearer {token}" '
        f'-d \'{{"id": "{DEMO_IMAGE_KEY}", "prompt": "A beautiful sunset over the ocean with gentle waves", '
        f'"duration": "8s", "projectId": "project-456"}}\''
    )


@click.command()
def api() -> None:
    """Run the API alone (needs REDIS_URL; workers run separately)."""
    import uvicorn

    from service.app import create_app
    from service.core.http import json_error_protocol, lean_proxy_headers

    settings = load_settings(check=False)
    require_models(settings)
    app = create_app(settings)
    app.on_startup.append(heap.settle)  # once the lifespan has opened everything
    asyncio.run(open_database(settings))  # refuse plainly here rather than inside the server's lifespan
    asyncio.run(check_storage(settings))
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


@click.command()
def worker() -> None:
    """Run one worker process (up to WORKER_CONCURRENCY jobs at once; needs REDIS_URL)."""
    from workers.main import run_worker

    settings = load_settings(check=False)
    require_models(settings)
    asyncio.run(check_storage(settings))
    settings.run(run_worker(settings, on_started=heap.settle, own_loop=True))
