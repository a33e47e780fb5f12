"""Which failures are outages (retry later, the job keeps its lease) and which are verdicts.

One definition for the API (its 503 handlers) and the workers (ride out the outage, never fail
or charge a job because a backing service was briefly away).
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3

import asyncpg
from redis.exceptions import RedisError, ResponseError

from service.core.errors import Transient

# Redis refusing a command is a verdict, except for these states of a server that is coming back.
_REDIS_RETRYABLE = ("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY")
# An OSError about one object (its name, its permissions) is not an outage of anything.
_NOT_OUTAGES = {
    errno.ENAMETOOLONG,
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EINVAL,
    errno.EEXIST,
}
_SQLITE_RETRYABLE = ("database is locked", "database table is locked", "unable to open", "disk I/O error")
POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.CannotConnectNowError,
)


def is_transient(exc: BaseException) -> bool:
    """An outage of the database or Redis, or a retryable conflict: worth trying again later."""
    if isinstance(exc, Transient):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).startswith(_REDIS_RETRYABLE)
    if isinstance(exc, OSError) and exc.errno in _NOT_OUTAGES:
        return False
    if isinstance(exc, sqlite3.OperationalError):  # also raised for SQL errors, which no retry mends
        return str(exc).startswith(_SQLITE_RETRYABLE)
    return isinstance(
        exc,
        (
            RedisError,
            OSError,
            asyncio.TimeoutError,
            *POSTGRES_OUTAGES,
            asyncpg.exceptions.SerializationError,
            asyncpg.exceptions.DeadlockDetectedError,
        ),
    )
