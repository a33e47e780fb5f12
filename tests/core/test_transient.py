"""Which failures are outages (retried, the job keeps its lease) and which are verdicts."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.core.errors import AppError, Transient
from service.core.transient import is_transient


@pytest.mark.parametrize(
    "exc",
    [
        RedisConnectionError("refused"),
        ResponseError("LOADING Redis is loading"),
        ConnectionRefusedError(),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
        sqlite3.OperationalError("database is locked"),
        Transient("could not record the request id"),
        OSError(errno.EIO, "I/O error"),
    ],
)
def test_outages_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("WRONGTYPE Operation against a key"),
        sqlite3.OperationalError('near ",": syntax error'),
        OSError(errno.ENAMETOOLONG, "File name too long"),
        FileNotFoundError(errno.ENOENT, "missing"),
        AppError("bad", 400),
        ValueError("a bug"),
        asyncpg.exceptions.UniqueViolationError("dup"),
    ],
)
def test_verdicts_are_not(exc: BaseException) -> None:
    assert not is_transient(exc)
