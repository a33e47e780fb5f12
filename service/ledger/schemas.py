"""What the ledger answers: a user's credits, entries, and the invariant check's report.

Amounts are integers (``credits.used`` in the spec is one); balances are rendered as the spec
renders them, as JSON numbers with a fraction (``150.0``), though stored as integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from service.core.pagination import iso


@dataclass(frozen=True)
class EntryFilter:
    """Which ledger entries to list (every field optional; all given ones must match)."""

    user_id: str | None = None
    kind: str | None = None
    generation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class EntryOut(msgspec.Struct, rename="camel", kw_only=True):
    """One ledger entry as its owner sees it."""

    id: int
    kind: str
    amount: int
    balance_after: float
    generation_id: str | None
    reason: str
    created_at: str


class CreditsOut(msgspec.Struct, rename="camel", kw_only=True):
    """``GET /video-gen/credits``: the caller's balance and most recent entries."""

    user_id: str
    balance: float
    entries: list[EntryOut]
    next_cursor: str | None


class Violation(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """One broken invariant: its name, what was found, and where."""

    invariant: str
    detail: str
    user_id: str | None = None
    generation_id: str | None = None
    entry_id: int | None = None


class VerifyReport(msgspec.Struct, rename="camel", kw_only=True):
    """``GET /admin/ledger/verify``: every violation found (empty when all invariants hold)."""

    ok: bool
    violations: list[Violation]
    accounts: int
    entries: int
    generations: int


def entry_out(row: dict[str, Any]) -> EntryOut:
    return EntryOut(
        id=row["id"],
        kind=row["kind"],
        amount=int(row["amount"]),
        balance_after=float(row["balance_after"]),
        generation_id=row["generation_id"],
        reason=row["reason"],
        created_at=iso(row["created_at"]) or "",
    )
