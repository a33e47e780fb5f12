"""A database that refuses us at start, in one line: where, why and what to try, and whether
waiting can mend it (a worker waits for a database that is starting; it stops for one that said no).

Printed URLs never carry their password (``redact``)."""

from __future__ import annotations

import getpass
from urllib.parse import unquote, urlsplit

import asyncpg


def redact(url: str) -> str:
    """A URL without its password, safe to print."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def describe_connect_error(url: str, exc: BaseException) -> str:
    """One line for a database that refused us at start: where, why, and what to try."""
    if not url.startswith(("postgresql://", "postgres://")):
        return f"cannot open the SQLite database {url!r}: {exc}"
    parts = urlsplit(url)
    user = unquote(parts.username or getpass.getuser())
    database = unquote(parts.path.lstrip("/")) or user
    where = f"PostgreSQL at {parts.hostname or 'localhost'}:{parts.port or 5432}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        hint = f"database {database!r} does not exist: create it (`createdb {database}`) or fix DATABASE_URL"
    elif isinstance(exc, (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError)):
        hint = f"role {user!r} was refused ({exc}): check the user and password in DATABASE_URL"
    else:
        reason = str(exc) or type(exc).__name__
        hint = f"{reason}: is PostgreSQL running there, and does DATABASE_URL name the right host and port?"
    return f"cannot connect to {where}: {hint}"


def is_permanent_refusal(exc: BaseException) -> bool:
    """The server answered and said no (no such database or role): waiting will not mend it."""
    return isinstance(
        exc,
        (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError),
    )
