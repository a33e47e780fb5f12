"""Cursor pagination shared by the ledger, the audit trail and generation listings.

Lists run newest first by ``(created_at, rank, key)``: ``rank`` orders rows of different tables
that share a timestamp (the audit trail merges two), ``key`` is the row's id. The cursor is that
triple of the last row served, base64url-encoded JSON: opaque to clients, stable under inserts
(new rows are newer, so they never shift a page being walked).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from piccolo.columns import Column
from piccolo.columns.combination import CombinableMixin

from service.core.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ROW_ID = 2**31 - 1  # serial ids are PostgreSQL integers


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    rank: int
    key: int | str


def check_limit(limit: int) -> int:
    """``limit`` between 1 and 200, or a spec-shaped 400 in class-validator's words."""
    if limit < 1:
        raise ValidationFailed(["limit must not be less than 1"])
    if limit > MAX_LIMIT:
        raise ValidationFailed([f"limit must not be greater than {MAX_LIMIT}"])
    return limit


def time_filter(name: str, value: datetime | None) -> datetime | None:
    """A ``since``/``until`` query value in UTC; a 400 for one that UTC cannot hold
    (``0001-01-01T00:00:00+14:00`` is before year 1 there)."""
    try:
        return utc(value)
    except OverflowError:
        raise ValidationFailed([f"{name} must be a date between year 1 and 9999 in UTC"]) from None


def utc(value: datetime | None) -> datetime | None:
    """Timestamps compare in UTC; a naive one is taken to be UTC already."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z``, as every response renders timestamps."""
    if value is None:
        return None
    return utc(value).isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]


def encode(created_at: datetime, key: int | str, rank: int = 0) -> str:
    raw = json.dumps([utc(created_at).isoformat(), rank, key], separators=(",", ":"))  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str | None, key_type: type = int) -> Cursor | None:
    """The position a cursor names; a 400 for anything this module did not produce (or for
    another listing: ``key_type`` is the type of the listed rows' ids)."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, rank, key = json.loads(raw)
        if not isinstance(rank, int) or not isinstance(key, key_type) or isinstance(key, bool):
            raise ValueError("bad cursor fields")
        if isinstance(key, int) and not 0 <= key <= MAX_ROW_ID:
            raise ValueError("row id out of range")
        return Cursor(created_at=utc(datetime.fromisoformat(created)), rank=rank, key=key)  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(["cursor is not valid"]) from None


def after(cursor: Cursor, created_at: Column, key: Column, rank: int = 0) -> CombinableMixin:
    """Rows of a table ranked ``rank`` that come after ``cursor`` in newest-first order."""
    if rank < cursor.rank:
        return created_at <= cursor.created_at
    if rank > cursor.rank:
        return created_at < cursor.created_at
    return (created_at < cursor.created_at) | ((created_at == cursor.created_at) & (key < cursor.key))


def page(rows: list[Any], limit: int, position: Any) -> tuple[list[Any], str | None]:
    """The first ``limit`` rows and the cursor after the last one (None on the last page).

    ``position(row)`` gives a row's ``(created_at, key, rank)``; callers fetch ``limit + 1`` rows
    so that a full page knows whether another follows.
    """
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode(*position(rows[-1]))
