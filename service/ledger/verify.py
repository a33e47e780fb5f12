"""Check every ledger invariant over the whole database and list each violation found.

The database enforces these already (constraints and triggers of the ``ledger_invariants``
migration); this is the independent audit that would notice a bypass (a dropped trigger, a manual
fix in psql, a restore from a bad backup). All checks read one consistent snapshot: a REPEATABLE
READ read-only transaction on PostgreSQL, a read transaction on SQLite (WAL keeps its snapshot).
Every query is plain SQL that both engines run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from piccolo.engine.postgres import PostgresEngine

from service.core import metrics
from service.core.db import current_engine
from service.core.db_transaction import Transaction
from service.ledger.schemas import VerifyReport, Violation
from service.ledger.tables import LedgerEntry

_DEBIT = "LEFT JOIN ledger_entries d ON d.generation_id = {g}.id AND d.kind = 'debit'"
_REFUND = "LEFT JOIN ledger_entries r ON r.generation_id = {g}.id AND r.kind = 'refund'"

# (invariant, SQL selecting the offending rows, how one row reads)
CHECKS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    (
        "balance_is_sum_of_entries",
        "SELECT a.user_id, a.balance, COALESCE(s.total, 0) AS total FROM accounts a LEFT JOIN "
        "(SELECT user_id, SUM(amount) AS total FROM ledger_entries GROUP BY user_id) s ON s.user_id = a.user_id "
        "WHERE a.balance <> COALESCE(s.total, 0)",
        lambda r: f"balance {r['balance']} but entries sum to {int(r['total'])}",
    ),
    (
        "entry_has_account",
        "SELECT e.id AS entry_id, e.user_id FROM ledger_entries e LEFT JOIN accounts a ON a.user_id = e.user_id "
        "WHERE a.user_id IS NULL",
        lambda r: "entry of a user with no account",
    ),
    (
        "balance_nonnegative",
        "SELECT user_id, balance FROM accounts WHERE balance < 0",
        lambda r: f"balance {r['balance']} is negative",
    ),
    (
        "balance_after_is_running_sum",
        "SELECT * FROM (SELECT id AS entry_id, user_id, balance_after, SUM(amount) OVER (PARTITION BY user_id "
        "ORDER BY id ROWS UNBOUNDED PRECEDING) AS running FROM ledger_entries) t WHERE balance_after <> running",
        lambda r: f"balance_after {r['balance_after']} but the entries up to it sum to {int(r['running'])}",
    ),
    (
        "entry_kind_and_sign",
        "SELECT id AS entry_id, user_id, generation_id, kind, amount FROM ledger_entries WHERE NOT ("
        "(kind = 'grant' AND amount > 0) OR (kind = 'debit' AND amount < 0) OR (kind = 'refund' AND amount > 0) "
        "OR (kind = 'adjustment' AND amount <> 0)) OR (kind IN ('debit', 'refund') AND generation_id IS NULL)",
        lambda r: f"{r['kind']} of {r['amount']}" + (" without a generation" if r["generation_id"] is None else ""),
    ),
    (
        "one_debit_and_one_refund_per_generation",
        "SELECT generation_id, kind, COUNT(*) AS n FROM ledger_entries WHERE kind IN ('debit', 'refund') "
        "GROUP BY generation_id, kind HAVING COUNT(*) > 1",
        lambda r: f"{r['n']} {r['kind']} entries",
    ),
    (
        "refund_only_of_a_charge",
        "SELECT e.id AS entry_id, e.user_id, e.generation_id, e.amount, d.amount AS debit FROM ledger_entries e "
        "LEFT JOIN ledger_entries d ON d.generation_id = e.generation_id AND d.kind = 'debit' "
        "AND d.user_id = e.user_id "
        "WHERE e.kind = 'refund' AND (d.id IS NULL OR e.amount > -d.amount)",
        lambda r: (
            f"refund of {r['amount']} but "
            + ("no debit of this user" if r["debit"] is None else f"charged {-r['debit']}")
        ),
    ),
    (
        "debit_has_its_generation",
        "SELECT d.id AS entry_id, d.user_id, d.generation_id FROM ledger_entries d LEFT JOIN generations g "
        "ON g.id = d.generation_id WHERE d.kind = 'debit' AND g.id IS NULL",
        lambda r: "debit of a generation that does not exist",
    ),
    (
        "generation_charge_matches_debit",
        "SELECT g.id AS generation_id, g.user_id, g.credits_charged, d.amount, d.user_id AS debit_user "
        f"FROM generations g {_DEBIT.format(g='g')} "
        "WHERE g.credits_charged <> COALESCE(-d.amount, 0) OR d.user_id <> g.user_id",
        lambda r: (
            f"credits_charged {r['credits_charged']} but debited "
            f"{0 if r['amount'] is None else -r['amount']} from {r['debit_user'] or 'nobody'}"
        ),
    ),
    (
        "generation_refund_matches_entry",
        "SELECT g.id AS generation_id, g.user_id, g.credits_refunded, r.amount "
        f"FROM generations g {_REFUND.format(g='g')} "
        "WHERE g.credits_refunded <> COALESCE(r.amount, 0)",
        lambda r: f"credits_refunded {r['credits_refunded']} but refunded {r['amount'] or 0}",
    ),
    (
        "failed_generation_refunded",
        "SELECT g.id AS generation_id, g.user_id, g.status FROM generations g "
        f"{_DEBIT.format(g='g')} {_REFUND.format(g='g')} "
        "WHERE g.status IN ('failed', 'cancelled') AND d.id IS NOT NULL AND r.id IS NULL",
        lambda r: f"{r['status']} after being charged, and not refunded",
    ),
    (
        "succeeded_generation_not_refunded",
        "SELECT g.id AS generation_id, g.user_id, r.actor FROM generations g JOIN ledger_entries r "
        "ON r.generation_id = g.id AND r.kind = 'refund' WHERE g.status = 'succeeded' AND NOT EXISTS "
        "(SELECT 1 FROM admin_actions a WHERE a.action = 'refund' AND a.generation_id = g.id)",
        lambda r: f"succeeded but refunded by {r['actor']} with no admin refund recorded",
    ),
]

_COUNTS = (
    "SELECT (SELECT COUNT(*) FROM accounts) AS accounts, (SELECT COUNT(*) FROM ledger_entries) AS entries, "
    "(SELECT COUNT(*) FROM generations) AS generations"
)


def _violation(invariant: str, row: dict[str, Any], describe: Callable[[dict[str, Any]], str]) -> Violation:
    entry_id = row.get("entry_id")
    return Violation(
        invariant=invariant,
        detail=describe(row),
        user_id=row.get("user_id"),
        generation_id=row.get("generation_id"),
        entry_id=None if entry_id is None else int(entry_id),
    )


async def verify_ledger() -> VerifyReport:
    """Run every check in one snapshot; ``ok`` when no violation was found."""
    engine = current_engine()
    violations: list[Violation] = []
    async with Transaction(engine.transaction()):  # its connection given back whatever happens
        if isinstance(engine, PostgresEngine):  # must be the transaction's first statement
            await LedgerEntry.raw("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for invariant, sql, describe in CHECKS:
            violations += [_violation(invariant, row, describe) for row in await LedgerEntry.raw(sql)]
        counts = (await LedgerEntry.raw(_COUNTS))[0]
    metrics.LEDGER_VERIFICATIONS.labels("failed" if violations else "ok").inc()
    metrics.LEDGER_VIOLATIONS.set(len(violations))
    return VerifyReport(
        ok=not violations,
        violations=violations,
        accounts=int(counts["accounts"]),
        entries=int(counts["entries"]),
        generations=int(counts["generations"]),
    )
