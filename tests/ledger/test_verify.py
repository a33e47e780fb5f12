"""``verify_ledger`` finds every kind of broken invariant, each with where it is, on both engines.

The database refuses these writes, so the ledger is broken here with its triggers bypassed (on
PostgreSQL CHECK and UNIQUE constraints still hold, so fewer kinds can be forged there).
"""

from __future__ import annotations

from service.ledger.verify import verify_ledger
from tests.factories import grant, make_generation
from tests.ledger.raw import RawSQL, entry, move

GENERATION_G4 = (
    "INSERT INTO generations (id, user_id, model, prompt, source_key, requested_duration, status, "
    "credits_charged, credits_refunded, created_at) VALUES ('g4', 'u2', 'local', 'p', 'k', '5s', "
    "'running', 300, 0, '2026-01-01 00:00:00+00:00')"
)

FORGERIES = [  # (invariant, statements)
    ("balance_is_sum_of_entries", [move(7, "u3")]),
    ("entry_has_account", [entry("grant", 5, user="ghost", balance_after="5")]),
    ("refund_only_of_a_charge", [move(10, "u2"), entry("refund", 10, user="u2", generation="nope", actor="admin1")]),
    ("generation_refund_matches_entry", [move(800), entry("refund", 800, generation="g1", actor="admin1")]),
    ("failed_generation_refunded", ["UPDATE generations SET status = 'failed' WHERE id = 'g3'"]),
    (
        "succeeded_generation_not_refunded",
        [
            move(750),
            entry("refund", 750, generation="g2", actor="system"),
            "UPDATE generations SET credits_refunded = 750 WHERE id = 'g2'",
        ],
    ),
    ("debit_has_its_generation", [move(-5, "u2"), entry("debit", -5, user="u2", generation="ghostgen")]),
    ("generation_charge_matches_debit", [GENERATION_G4]),
    ("balance_after_is_running_sum", [move(5, "u2"), entry("grant", 5, user="u2", balance_after="999")]),
]
SQLITE_ONLY = [  # PostgreSQL's CHECK constraints refuse these even with triggers off
    ("entry_kind_and_sign", [move(-1, "u3"), entry("grant", -1, user="u3")]),
    ("balance_nonnegative", [move(-4, "u4"), entry("adjustment", -4, user="u4")]),
    (
        "one_debit_and_one_refund_per_generation",
        [move(-750, "u1"), entry("debit", -750, generation="g2", key="debit:g2-again")],
    ),
]


async def _ledger_in_use() -> None:
    await grant("u1", 5000)
    await grant("u2", 100)
    await grant("u3", 100)
    await grant("u4", 1)
    await make_generation("u1", generation_id="g1", fund=False)
    await make_generation("u1", generation_id="g2", status="succeeded", fund=False)
    await make_generation("u1", generation_id="g3", status="running", fund=False)
    await make_generation("u1", generation_id="g5", status="failed", fund=False)


async def test_a_ledger_in_use_has_no_violation(ledger_db: str) -> None:
    await _ledger_in_use()
    report = await verify_ledger()
    assert report.ok and report.violations == []
    assert (report.accounts, report.entries, report.generations) == (4, 9, 4)


async def test_every_forged_violation_is_found_and_located(raw_sql: RawSQL) -> None:
    await _ledger_in_use()
    forgeries = FORGERIES + ([] if raw_sql.postgres else SQLITE_ONLY)
    for _, statements in forgeries:
        await raw_sql.run(*statements, bypass_triggers=True)
    report = await verify_ledger()
    found = {v.invariant for v in report.violations}
    assert not report.ok
    assert found == {name for name, _ in forgeries}
    by_name = {v.invariant: v for v in report.violations}
    assert by_name["failed_generation_refunded"].generation_id == "g3"
    assert by_name["failed_generation_refunded"].user_id == "u1"
    [sums] = [v for v in report.violations if v.invariant == "balance_is_sum_of_entries"]
    assert (
        sums.user_id == "u3"
        and sums.detail
        == f"balance {106 if not raw_sql.postgres else 107} but entries sum to {99 if not raw_sql.postgres else 100}"
    )  # on SQLite u3 also carries the forged negative grant
    assert by_name["entry_has_account"].user_id == "ghost" and by_name["entry_has_account"].entry_id
    assert by_name["generation_charge_matches_debit"].generation_id == "g4"
    assert by_name["succeeded_generation_not_refunded"].generation_id == "g2"
    assert "refunded by system" in by_name["succeeded_generation_not_refunded"].detail
