"""Ledger tables: one account per user and its append-only entries.

The database guards the money: ``LedgerEntry.unique_key`` is ``debit:<generation>`` or
``refund:<generation>`` so a generation is charged once and refunded at most once; the ``guards``
migration adds ``balance >= 0`` and append-only entries, and the ``ledger_invariants`` migration
the rest (every entry continues its account's balance, refunds only of a charge and never more,
failed generations refunded, grants positive ...). Amounts are integers, never floats.
"""

from piccolo.columns import BigInt, Text, Timestamptz, Varchar
from piccolo.table import Table


class Account(Table, tablename="accounts"):
    user_id = Varchar(length=255, primary_key=True)
    balance = BigInt(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class LedgerEntry(Table, tablename="ledger_entries"):
    """One movement of credits. Never updated, never deleted."""

    user_id = Varchar(length=255)  # indexed with ``id`` (``ledger_entries_user_sequence``, a migration)
    kind = Varchar(length=16)  # grant | debit | refund | adjustment
    amount = BigInt()  # signed: debits negative
    balance_after = BigInt()
    generation_id = Varchar(length=64, null=True, default=None, index=True)
    actor = Varchar(length=255)  # the user, an admin's id, or "system"
    reason = Text(default="")
    unique_key = Varchar(length=100, null=True, default=None, unique=True)
    created_at = Timestamptz(index=True)
