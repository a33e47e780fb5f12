"""The ledger's money operations, on SQLite and PostgreSQL: entries, balances, once-only effects."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from service.admin.service import refund_generation
from service.core.errors import BadRequest, Conflict, InsufficientCredits, NotFound
from service.generations import repository as generations
from service.generations.settlement import AlreadyExists
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from service.ledger.verify import verify_ledger
from tests.factories import charge, make_generation

pytestmark = pytest.mark.usefixtures("ledger_db")


async def entries(user_id: str = "u1") -> list[dict[str, object]]:
    return await LedgerEntry.select().where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id)


async def test_a_grant_appends_an_entry_with_everything_an_audit_needs() -> None:
    started = datetime.now(UTC)
    assert await ledger.grant("u1", 900, actor="admin7", reason="welcome") == 900
    [entry] = await entries()
    assert entry["kind"] == "grant" and entry["amount"] == 900 and entry["balance_after"] == 900
    assert entry["actor"] == "admin7" and entry["reason"] == "welcome" and entry["generation_id"] is None
    assert started <= entry["created_at"] <= datetime.now(UTC)
    assert isinstance(entry["amount"], int) and isinstance(entry["balance_after"], int)


@pytest.mark.parametrize("amount", [0, -5, True, 1.5, 10**13])
async def test_a_grant_must_be_a_positive_integer(amount: object) -> None:
    with pytest.raises(BadRequest):
        await ledger.grant("u1", amount, actor="a", reason="r")  # type: ignore[arg-type]
    assert await entries() == []


async def test_a_charge_debits_once_and_creates_the_generation_with_it() -> None:
    await ledger.grant("u1", 900, actor="a", reason="r")
    charged = await charge("g1", "u1", 750)
    assert (charged.record.credits_charged, charged.balance) == (750, 150)
    debit = (await entries())[-1]
    assert (debit["kind"], debit["amount"], debit["balance_after"], debit["generation_id"], debit["actor"]) == (
        "debit",
        -750,
        150,
        "g1",
        "u1",
    )
    assert (await generations.get("g1")).credits_charged == 750
    with pytest.raises(AlreadyExists):  # a redelivered job: nothing moves
        await charge("g1", "u1", 750)
    assert await ledger.balance_of("u1") == 150 and len(await entries()) == 2


async def test_insufficient_credits_writes_nothing_and_says_the_spec_sentence() -> None:
    await ledger.grant("u1", 100, actor="a", reason="r")
    with pytest.raises(InsufficientCredits) as err:
        await charge("g1", "u1", 750)
    assert msgspec.to_builtins(err.value.body()) == {
        "statusCode": 400,
        "message": "Insufficient credits. Required: 750, Available: 100.0",
        "error": "Bad Request",
    }
    assert await generations.get("g1") is None and len(await entries()) == 1


async def test_a_user_without_an_account_is_short_of_credits() -> None:
    with pytest.raises(InsufficientCredits, match="Available: 0.0"):
        await charge("g1", "u1", 750)
    assert await ledger.balance_of("u1") == 0


async def test_a_refund_returns_the_charge_exactly_once() -> None:
    gid = await make_generation("u1", cost=750)
    refund = await refund_generation("admin1", gid, "bad video")
    assert (refund.user_id, refund.refunded, refund.balance) == ("u1", 750, 750)
    assert (await generations.get(gid)).credits_refunded == 750
    with pytest.raises(Conflict, match="already refunded"):
        await refund_generation("admin1", gid, "again")
    assert await ledger.balance_of("u1") == 750
    kinds = [(e["kind"], e["amount"], e["actor"]) for e in await entries()]
    assert kinds == [("grant", 750, "test"), ("debit", -750, "u1"), ("refund", 750, "admin1")]


async def test_refusing_refunds_of_unknown_and_uncharged_generations() -> None:
    with pytest.raises(NotFound):
        await refund_generation("a", "nope", "r")
    free = await make_generation("u1", cost=0)  # a free model: a generation with no debit
    with pytest.raises(Conflict, match="never charged"):
        await refund_generation("a", free, "r")
    assert await entries() == []


async def test_a_deduction_never_goes_below_zero() -> None:
    await ledger.grant("u1", 100, actor="a", reason="r")
    assert await ledger.deduct("u1", 60, actor="admin1", reason="correction") == 40
    with pytest.raises(InsufficientCredits, match="Available: 40.0"):
        await ledger.deduct("u1", 41, actor="admin1", reason="too much")
    assert [e["kind"] for e in await entries()] == ["grant", "adjustment"]


async def test_every_state_the_workers_reach_keeps_the_invariants() -> None:
    await make_generation("u1", status="succeeded")
    await make_generation("u1", status="failed")
    await make_generation("u2", status="running")
    admin_refunded = await make_generation("u2", status="succeeded")
    await refund_generation("admin1", admin_refunded, "the video was black")
    report = await verify_ledger()
    assert report.violations == [] and report.ok
    assert (report.accounts, report.generations) == (2, 4)
