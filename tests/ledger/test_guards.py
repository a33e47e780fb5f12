"""The database itself refuses every write that would break a ledger invariant, on SQLite and on
PostgreSQL, whoever sends it: each case goes around the ledger code with raw SQL.
"""

from __future__ import annotations

import pytest

from service.core.db import write_transaction
from service.generations import repository as generations
from service.generations import transitions
from service.ledger import service as ledger
from tests.factories import grant, make_generation, set_columns
from tests.ledger.raw import RawSQL, entry, move

# (case, statements run in one transaction, a pattern the database's refusal matches)
CASES = [
    ("entry_update", ["UPDATE ledger_entries SET amount = 1"], "append-only"),
    ("entry_delete", ["DELETE FROM ledger_entries"], "append-only"),
    ("account_delete", ["DELETE FROM accounts WHERE user_id = 'u1'"], "ledger:"),
    ("account_rename", ["UPDATE accounts SET user_id = 'u9' WHERE user_id = 'u1'"], "ledger:"),
    ("negative_balance", ["UPDATE accounts SET balance = -1 WHERE user_id = 'u1'"], "nonnegative|>= 0"),
    ("entry_off_balance", [move(5), entry("grant", 5, balance_after="1")], "does not follow"),
    ("entry_without_move", [entry("grant", 5)], "does not follow"),
    ("entry_without_account", [entry("grant", 5, user="ghost")], "does not follow|null value"),
    ("grant_negative", [move(-5), entry("grant", -5)], "kind_amount|kind and amount"),
    ("unknown_kind", [move(5), entry("bonus", 5)], "kind_amount|kind and amount"),
    (
        "debit_positive",
        [move(5), entry("debit", 5, generation="g1", key="debit:g1b")],
        "kind_amount|kind and amount|debit needs its generation",
    ),
    (
        "debit_without_generation_id",
        [move(-5), entry("debit", -5, key=None)],
        "generation_key|kind:generation|debit needs its generation",
    ),
    ("debit_wrong_key", [move(-750), entry("debit", -750, generation="g1", key="x")], "generation_key|kind:generation"),
    ("grant_with_key", [move(5), entry("grant", 5, key="grant:x")], "generation_key|kind:generation"),
    ("debit_unknown_generation", [move(-750), entry("debit", -750, generation="nope")], "debit needs its generation"),
    ("debit_wrong_amount", [move(-700), entry("debit", -700, generation="g1")], "debit needs its generation"),
    ("second_debit", [move(-750), entry("debit", -750, generation="g1")], "unique|UNIQUE"),
    ("refund_without_debit", [move(750), entry("refund", 750, generation="nope")], "refund needs a debit"),
    ("refund_over_charge", [move(751), entry("refund", 751, generation="g1")], "refund needs a debit"),
    ("refund_other_user", [move(750, "u2"), entry("refund", 750, user="u2", generation="g1")], "refund needs a debit"),
    ("second_refund", [move(750), entry("refund", 750, generation="g3", actor="admin1")], "unique|UNIQUE"),
    ("system_refund_of_success", [move(750), entry("refund", 750, generation="g2", actor="system")], "only an admin"),
    ("failed_unrefunded", ["UPDATE generations SET status = 'failed' WHERE id = 'g1'"], "refunded before"),
    (
        "succeeded_after_failure_refund",
        ["UPDATE generations SET status = 'succeeded' WHERE id = 'g3'"],
        "cannot succeed",
    ),
    ("charge_changed", ["UPDATE generations SET credits_charged = 1 WHERE id = 'g1'"], "never change"),
    ("owner_changed", ["UPDATE generations SET user_id = 'u2' WHERE id = 'g1'"], "never change"),
    ("refunded_mirror", ["UPDATE generations SET credits_refunded = 750 WHERE id = 'g1'"], "mirror"),
    (
        "insert_failed_unrefunded",
        [
            "INSERT INTO generations (id, user_id, model, prompt, source_key, requested_duration, status, "
            "credits_charged, credits_refunded, created_at) "
            "VALUES ('g9', 'u1', 'local', 'p', 'k', '5s', 'failed', 750, 0, '2026-01-01 00:00:00+00:00')"
        ],
        "refunded before",
    ),
    ("admin_action_update", ["UPDATE admin_actions SET reason = 'x'"], "ledger:"),
    ("admin_action_delete", ["DELETE FROM admin_actions"], "ledger:"),
]


async def _setup() -> None:
    """u1 with 10,000 credits; g1 charged, g2 succeeded, g3 refunded by the system (still running);
    u2 with an account; one admin action."""
    from service.admin import repository as actions

    await grant("u1", 10_000)
    await grant("u2", 100)
    await make_generation("u1", generation_id="g1", fund=False)
    await make_generation("u1", generation_id="g2", status="succeeded", fund=False)
    await make_generation("u1", generation_id="g3", status="running", fund=False)
    async with write_transaction():  # refunded by the system, not marked failed yet
        await ledger.refund("g3", actor=ledger.SYSTEM, reason="generation failed: test")
        await generations.record_refund("g3", 750)
    await actions.record("admin1", "grant", reason="setup", target_user_id="u2")


@pytest.mark.parametrize(("case", "statements", "refusal"), CASES, ids=[c[0] for c in CASES])
async def test_the_database_refuses(raw_sql: RawSQL, case: str, statements: list[str], refusal: str) -> None:
    await _setup()
    before = await raw_sql.run("SELECT user_id, balance FROM accounts ORDER BY user_id")
    with pytest.raises(Exception, match=refusal):
        await raw_sql.run(*statements)
    assert await raw_sql.run("SELECT user_id, balance FROM accounts ORDER BY user_id") == before


async def test_a_consistent_raw_write_is_accepted(raw_sql: RawSQL) -> None:
    """The guards refuse only what breaks an invariant: a correct grant by hand goes through."""
    await _setup()
    await raw_sql.run(move(5), entry("grant", 5))
    assert await ledger.balance_of("u1") == 8505


async def test_a_balance_change_without_its_entry(raw_sql: RawSQL) -> None:
    """PostgreSQL refuses it at commit (deferred constraint trigger). SQLite cannot defer a check:
    it takes the write, then refuses every later entry of that account, and verify reports it."""
    await _setup()
    if raw_sql.postgres:
        with pytest.raises(Exception, match="not the sum of its entries"):
            await raw_sql.run(move(5))
        assert await ledger.balance_of("u1") == 8500
        return
    await raw_sql.run(move(5))
    with pytest.raises(Exception, match="does not follow"):
        await ledger.grant("u1", 10, actor="test", reason="after a stray update")
    from service.ledger.verify import verify_ledger

    report = await verify_ledger()
    assert {v.invariant for v in report.violations} == {"balance_is_sum_of_entries"}


async def test_the_worker_order_is_accepted(ledger_db: str) -> None:
    """Refund, then mark failed (the workers' order, in one transaction) passes the guards; failing
    first is refused."""
    gid = await make_generation("u1")
    with pytest.raises(Exception, match="refunded before"):
        await set_columns(gid, status="failed")
    async with write_transaction():
        await ledger.refund(gid, actor=ledger.SYSTEM, reason="generation failed: boom")
        await transitions.fail(gid, error="boom", error_status=500, refunded=750)
    assert (await generations.get(gid)).credits_refunded == 750
