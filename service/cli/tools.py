"""The one-shot commands: ``demo``, ``migrate``, ``token``, ``models`` and ``probe``."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import click

from service.cli.startup import load_settings, open_database, refuse, warn_if_hs256_refused
from service.core.settings import SettingsError


@click.command()
def demo() -> None:
    """Run one image-to-video request through the embedded stack and print the answer."""
    from service.demo import run_demo

    load_settings(check=True)  # the environment's other settings must still make sense
    sys.exit(asyncio.run(run_demo()))


@click.command()
def migrate() -> None:
    """Apply pending database migrations (DATABASE_URL)."""
    from service.core.checks import check_database_url

    settings = load_settings()
    try:
        check_database_url(settings.database_url)
    except SettingsError as exc:
        refuse(str(exc))
    asyncio.run(open_database(settings, migrate=True))
    click.echo(f"migrated {settings.database_url}")


@click.command()
@click.argument("user_id")
@click.option("--admin", is_flag=True, help="Add the admin role.")
@click.option("--hours", default=24, show_default=True)
def token(user_id: str, admin: bool, hours: int) -> None:
    """Print a JWT for USER_ID signed with JWT_SECRET (HS256, for the embedded stack and tests)."""
    from service.core.auth import make_token

    settings = load_settings()
    warn_if_hs256_refused(settings)
    click.echo(make_token(settings.jwt_secret, user_id, roles=["admin"] if admin else [], ttl=timedelta(hours=hours)))


@click.command()
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


@click.command()
@click.argument("role", type=click.Choice(["api", "worker"]))
def probe(role: str) -> None:
    """Health check of this host's API or worker (exit 0 healthy, 1 not): containers' HEALTHCHECK."""
    from service.health.probe import probe_api, probe_worker

    settings = load_settings()
    ok, detail = probe_api(settings) if role == "api" else asyncio.run(probe_worker(settings))
    click.echo(f"{role} {'healthy' if ok else 'UNHEALTHY'}: {detail}")
    sys.exit(0 if ok else 1)
