"""The charge and the SUCCEEDED transition group-committed on PostgreSQL: concurrent jobs share one
statement, each gets what the single statement gives it, and the ledger stays balanced.

Statements are counted at the engine (every query Piccolo sends), never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from piccolo.engine.postgres import PostgresEngine

from service.core import db
from service.core.errors import InsufficientCredits
from service.core.transient import is_transient
from service.generations import batched, charging, repository, settlement, transitions
from service.generations.records import GenerationRecord, NewGeneration
from service.generations.tables import Generation
from service.ledger import service as ledger
from service.ledger.verify import verify_ledger
from tests.factories import new_generation


class Statements:
    """Counts the statements sent through the engine; ``hold`` keeps the next one waiting and
    ``outage`` makes it fail as a dropped connection would."""

    def __init__(self, run: Callable[..., Awaitable[Any]]) -> None:
        self.count = 0
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.outage = False
        self._run = run

    async def __call__(self, engine: Any, querystring: Any, in_pool: bool = True) -> Any:
        self.count += 1
        self.entered.set()
        if self.hold is not None:
            hold, self.hold = self.hold, None
            await hold.wait()
        if self.outage:
            self.outage = False
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await self._run(engine, querystring, in_pool=in_pool)


@pytest.fixture
async def statements(clean_postgres: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Statements]:
    await db.connect(clean_postgres)
    counter = Statements(PostgresEngine.run_querystring)

    async def run_querystring(self: PostgresEngine, querystring: Any, in_pool: bool = True) -> Any:
        return await counter(self, querystring, in_pool)

    monkeypatch.setattr(PostgresEngine, "run_querystring", run_querystring)
    try:
        yield counter
    finally:
        await db.disconnect()


Charge = Callable[[NewGeneration, int], Awaitable[Any]]


async def _single(new: NewGeneration, cost: int) -> Any:
    """The single statement, answered the way ``settlement.charge`` answers it."""
    charged = await charging.charge_in_one_call(new, cost=cost, attempts=1)
    if charged is None:
        raise settlement.AlreadyExists(f"Generation {new.id} is already charged")
    return settlement.Charged(*charged)


async def _batched(new: NewGeneration, cost: int) -> Any:
    return await settlement.charge(new, cost=cost, attempts=1)


async def _prepare(p: str) -> None:
    """Accounts ``{p}rich`` (1000), ``{p}poor`` (100), no account ``{p}none``; ``{p}old`` charged
    and ``{p}orphan``'s debit left without its record (so charging it again is VGI02)."""
    await ledger.grant(f"{p}rich", 1000, actor="test", reason="fund")
    await ledger.grant(f"{p}poor", 150, actor="test", reason="fund")
    await settlement.charge(new_generation(f"{p}old", f"{p}rich"), cost=100, attempts=1)
    await settlement.charge(new_generation(f"{p}orphan", f"{p}poor"), cost=50, attempts=1)
    await Generation.delete().where(Generation.id == f"{p}orphan")


def _jobs(p: str) -> list[tuple[NewGeneration, int]]:
    return [
        (new_generation(f"{p}a", f"{p}rich"), 300),  # charged: 900 -> 600
        (new_generation(f"{p}b", f"{p}rich"), 500),  # charged: 600 -> 100
        (new_generation(f"{p}c", f"{p}rich"), 200),  # short: 100 left
        (new_generation(f"{p}d", f"{p}poor"), 250),  # short: 100 left
        (new_generation(f"{p}old", f"{p}rich"), 50),  # the record exists: resume it
        (new_generation(f"{p}orphan", f"{p}poor"), 50),  # its debit exists: AlreadyCharged
        (new_generation(f"{p}free", f"{p}none"), 0),  # free, no account
        (new_generation(f"{p}e", f"{p}poor"), 100),  # charged: 100 -> 0
    ]


def _seen(outcome: Any, p: str) -> tuple[Any, ...]:
    """An outcome with the run's prefix and timestamps taken out, to compare the two runs."""
    if isinstance(outcome, BaseException):
        return (type(outcome).__name__, str(outcome).replace(p, "<p>"))
    record = msgspec.structs.asdict(outcome.record)
    assert record.pop("created_at") == record.pop("started_at")
    return (outcome.balance, {k: v.replace(p, "<p>") if isinstance(v, str) else v for k, v in record.items()})


async def test_a_batch_of_mixed_outcomes_answers_each_job_as_the_single_statement_does(
    statements: Statements,
) -> None:
    await _prepare("s-")
    singles = [await _outcome(_single, new, cost) for new, cost in _jobs("s-")]
    await _prepare("b-")
    before, trips = statements.count, batched.charges().round_trips
    together = await asyncio.gather(*(_outcome(_batched, new, cost) for new, cost in _jobs("b-")))
    assert statements.count - before == 1 and batched.charges().round_trips - trips == 1
    assert [_seen(o, "b-") for o in together] == [_seen(o, "s-") for o in singles]
    assert [type(o).__name__ for o in together] == [
        "Charged",
        "Charged",
        "InsufficientCredits",
        "InsufficientCredits",
        "AlreadyExists",
        "AlreadyCharged",
        "Charged",
        "Charged",
    ]
    assert [o.balance for o in together if isinstance(o, settlement.Charged)] == [600, 100, 0, 0]
    assert await repository.get("b-c") is None and await repository.get("b-d") is None
    assert await ledger.balance_of("b-rich") == 100 and await ledger.balance_of("b-poor") == 0
    await _only_the_orphans_break_the_ledger()


async def _outcome(charge: Charge, new: NewGeneration, cost: int) -> Any:
    try:
        return await charge(new, cost)
    except (InsufficientCredits, settlement.AlreadyExists, ledger.AlreadyCharged) as exc:
        return exc


async def _only_the_orphans_break_the_ledger() -> None:
    report = await verify_ledger()
    assert {(v.invariant, v.generation_id) for v in report.violations} == {
        ("debit_has_its_generation", "s-orphan"),
        ("debit_has_its_generation", "b-orphan"),
    }


async def test_a_statement_the_server_refuses_fails_only_the_job_at_fault(statements: Statements) -> None:
    await ledger.grant("u1", 1000, actor="test", reason="fund")
    jobs = [(new_generation("g1"), 100), (new_generation("bad"), -5), (new_generation("g2"), 200)]
    before = statements.count
    results = await asyncio.gather(*(_batched(new, cost) for new, cost in jobs), return_exceptions=True)
    assert statements.count - before == 4  # the batch, refused; then each job alone
    assert isinstance(results[1], asyncpg.CheckViolationError) and not is_transient(results[1])
    assert [r.balance for r in (results[0], results[2])] == [900, 700]
    assert await repository.get("bad") is None and (await verify_ledger()).ok


async def test_an_outage_fails_the_jobs_of_its_round_trip_and_no_others(statements: Statements) -> None:
    await ledger.grant("u1", 1000, actor="test", reason="fund")
    hold = statements.hold = asyncio.Event()
    statements.outage = True
    statements.entered.clear()
    lost = [asyncio.create_task(_batched(new_generation(g), 100)) for g in ("g1", "g2")]
    await statements.entered.wait()
    later = [asyncio.create_task(_batched(new_generation(g), 100)) for g in ("g3", "g4")]
    await asyncio.sleep(0)
    hold.set()
    for task in lost:
        with pytest.raises(asyncpg.ConnectionDoesNotExistError) as caught:
            await task
        assert is_transient(caught.value)
    assert [(await t).balance for t in later] == [900, 800]
    assert await repository.get("g1") is None and await repository.get("g2") is None
    assert await _single(new_generation("g1"), 100) is not None  # a retried delivery charges as before
    assert (await verify_ledger()).ok


async def _running(*ids: str, user: str = "u1") -> list[GenerationRecord]:
    await ledger.grant(user, 100 * len(ids), actor="test", reason="fund")
    return [(await settlement.charge(new_generation(g, user), cost=100, attempts=1)).record for g in ids]


async def test_concurrent_successes_share_one_statement_and_a_record_already_ended_gets_none(
    statements: Statements,
) -> None:
    one, two, three, ended = await _running("g1", "g2", "g3", "g4")
    assert await batched.succeed(ended, output_key="k4", duration_seconds=4.0, generation_ms=4) is not None
    before = statements.count
    results = await asyncio.gather(
        *(
            batched.succeed(r, output_key=f"k{i}", duration_seconds=i + 0.5, generation_ms=i)
            for i, r in enumerate((one, two, three, ended, one), start=1)
        )
    )
    assert statements.count - before == 1
    assert results[3] is None and results[4] is None  # ended before; the same job twice: the first wins
    for i, done in enumerate(results[:3], start=1):
        assert done is not None and done.balance == 0 and done.record.status is transitions.SUCCEEDED
        stored = await repository.get(f"g{i}")
        assert stored is not None and msgspec.structs.asdict(stored) == msgspec.structs.asdict(done.record)
        assert (stored.output_key, stored.duration_seconds, stored.generation_ms) == (f"k{i}", i + 0.5, i)
    assert (await verify_ledger()).ok


async def test_a_failed_record_is_not_succeeded_by_the_batch(statements: Statements) -> None:
    record, other = await _running("g1", "g2")
    await settlement.fail(record, InsufficientCredits(1, 0))
    results = await asyncio.gather(
        batched.succeed(record, output_key="k1", duration_seconds=1.0, generation_ms=1),
        batched.succeed(other, output_key="k2", duration_seconds=1.0, generation_ms=1),
    )
    assert results[0] is None and results[1] is not None and results[1].balance == 100
    stored = await repository.get("g1")
    assert stored is not None and stored.status is transitions.FAILED and (await verify_ledger()).ok


async def test_a_transition_changes_no_indexed_column_and_money_statements_never_scan_the_table(
    statements: Statements, clean_postgres: str
) -> None:
    """A transition (status, output, progress, refund, attempts) can be a heap-only update: every
    index of ``generations`` is on a column set once at creation, and pages keep room for the new
    version. The batched charge and SUCCEEDED transition (and the triggers they fire) find rows by
    key even on tables never analyzed, where the planner otherwise chose a scan of every row."""
    indexed = await Generation.raw(
        "SELECT DISTINCT a.attname AS name FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'generations'::regclass"
    )
    assert {row["name"] for row in indexed} == {"id", "user_id", "project_id", "model", "created_at"}
    [options] = await Generation.raw("SELECT reloptions FROM pg_class WHERE oid = 'generations'::regclass")
    assert "fillfactor=80" in options["reloptions"]
    await ledger.grant("u1", 10_000, actor="test", reason="fund")
    for i in range(200):  # enough rows that reading them all costs more than a key lookup
        await settlement.charge(new_generation(f"g{i}", "u1"), cost=1, attempts=1)
    charge = [batched._Charge(new_generation(f"n{i}", "u1"), 1, 1, repository.now()).row() for i in range(2)]
    conn = await asyncpg.connect(clean_postgres)
    transaction = conn.transaction()  # the scan counters below are this transaction's
    await transaction.start()
    try:
        await conn.fetch(_numbered(batched._CHARGE_MANY), *[list(c) for c in zip(*charge, strict=True)])
        now = repository.now()
        succeed = (["g1", "g2"], ["k1", "k2"], [1.0, 1.0], [5, 5], [now, now])
        assert len(await conn.fetch(_numbered(batched._SUCCEED_MANY), *succeed)) == 2
        scans = await conn.fetchrow(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'generations'"
        )
        assert scans["seq_scan"] == 0 and scans["idx_scan"] > 0
    finally:
        await transaction.rollback()
        await conn.close()


def _numbered(sql: str) -> str:
    """Piccolo's ``{}`` placeholders as asyncpg's ``$n``."""
    count = sql.count("{}")
    return sql.format(*(f"${n}" for n in range(1, count + 1)))
