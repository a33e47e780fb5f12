"""Operator commands: ``video-gen credits grant|show`` and ``video-gen ledger verify``.

They run the same service functions as the admin API against ``DATABASE_URL`` (which must be
migrated), so a CLI grant is an admin action in the audit trail like any other; its admin id is
``--admin`` (default ``cli:<login name>``).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

T = TypeVar("T")


def _run(action: Callable[[], Awaitable[T]]) -> T:
    """Connect to the migrated database, run ``action``, disconnect; an AppError is a clean exit 1."""
    from service.core import db
    from service.core.errors import AppError
    from service.core.settings import Settings

    async def run() -> T:
        await db.connect(Settings.from_env().database_url, pool_size=2)
        try:
            await db.require_migrated()
            return await action()
        finally:
            await db.disconnect()

    try:
        return asyncio.run(run())
    except AppError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def credits() -> None:
    """Grant and inspect users' credits."""


@credits.command("grant")
@click.argument("user_id")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why (shown in the audit trail).")
@click.option(
    "--admin",
    "admin_id",
    default=lambda: f"cli:{getpass.getuser()}",
    show_default="cli:<login>",
    help="The admin id recorded for this grant.",
)
def grant(user_id: str, amount: int, reason: str, admin_id: str) -> None:
    """Add AMOUNT credits to USER_ID's account."""
    from service.admin.service import grant_credits

    out = _run(lambda: grant_credits(admin_id, user_id, amount, reason))
    click.echo(f"granted {amount} credits to {user_id}: balance {out.balance}")


@credits.command("show")
@click.argument("user_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200), help="Entries to list.")
def show(user_id: str, limit: int) -> None:
    """Print USER_ID's balance and most recent ledger entries."""
    from service.ledger.service import credits_of

    out = _run(lambda: credits_of(user_id, limit=limit, cursor=None))
    click.echo(f"{user_id}: balance {out.balance}")
    for e in out.entries:
        target = f" generation {e.generation_id}" if e.generation_id else ""
        click.echo(
            f"  {e.created_at}  #{e.id:<6} {e.kind:<10} {e.amount:>+10}  -> {e.balance_after}{target}  {e.reason}"
        )


@click.group()
def ledger() -> None:
    """Audit the credit ledger."""


@ledger.command("verify")
def verify() -> None:
    """Check every ledger invariant; exit status 1 when any is violated."""
    from service.ledger.verify import verify_ledger

    report = _run(verify_ledger)
    for v in report.violations:
        where = " ".join(
            f"{k}={val}"
            for k, val in (("user", v.user_id), ("generation", v.generation_id), ("entry", v.entry_id))
            if val is not None
        )
        click.echo(f"VIOLATION {v.invariant}: {v.detail} ({where})")
    checked = f"{report.accounts} accounts, {report.entries} entries, {report.generations} generations"
    if report.ok:
        click.echo(f"ledger ok: every invariant holds ({checked})")
        return
    click.echo(f"ledger BROKEN: {len(report.violations)} violation(s) ({checked})", err=True)
    sys.exit(1)
