"""Cancel racing everything else that ends a generation, on SQLite and on PostgreSQL (where the
two sides run on separate connections at once): exactly one outcome, at most one refund, the
ledger's invariants hold. And the worker's side: a cancelled job never runs, a running one is
stopped, a job whose worker died is answered from its cancelled record on redelivery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.core.errors import AppError
from service.generations import repository as generations
from service.generations import settlement, transitions
from service.generations.status import GenerationStatus
from service.generations.task import GenerationTask
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from service.ledger.verify import verify_ledger
from tests.factories import grant, new_generation
from tests.generations.conftest import CountingStorage, body, make_job
from tests.workers.models import ScriptedModel, SimulatedCrash

ROUNDS = 6
CANCELLED = {"statusCode": 409, "message": "Image-to-video generation cancelled", "error": "Conflict"}


async def refunds(generation_id: str) -> int:
    return await LedgerEntry.count().where(
        (LedgerEntry.generation_id == generation_id) & (LedgerEntry.kind == "refund")
    )


async def charged(i: int) -> Any:
    return (await settlement.charge(new_generation(f"g{i}"), cost=750, attempts=1)).record


async def succeed(record: Any) -> Any:
    return await transitions.succeed(
        record, output_key=f"videos/u1/{record.id}.mp4", duration_seconds=5.0, generation_ms=1
    )


async def check_ledger() -> None:
    assert (await verify_ledger()).violations == []


async def test_cancel_racing_success_ends_one_way(worker_db) -> None:
    await grant("u1", 750 * ROUNDS)
    outcomes = []
    for i in range(ROUNDS):
        record = await charged(i)
        racers = [settlement.cancel(record, actor="u1"), succeed(record)]
        await asyncio.gather(*(racers if i % 2 else reversed(racers)))
        end = await generations.get(record.id)
        outcomes.append(end.status)
        assert end.status in (GenerationStatus.SUCCEEDED, GenerationStatus.CANCELLED)
        expected = 1 if end.status is GenerationStatus.CANCELLED else 0
        assert await refunds(record.id) == expected
        assert end.credits_refunded == 750 * expected
    cancelled = sum(s is GenerationStatus.CANCELLED for s in outcomes)
    assert await ledger.balance_of("u1") == 750 * cancelled
    await check_ledger()


async def test_cancel_racing_failure_refunds_once(worker_db) -> None:
    await grant("u1", 750 * ROUNDS)
    for i in range(ROUNDS):
        record = await charged(i)
        racers = [settlement.cancel(record, actor="u1"), settlement.fail(record, AppError("boom", 500))]
        ends = await asyncio.gather(*(racers if i % 2 else reversed(racers)))
        end = await generations.get(record.id)
        assert end.status in (GenerationStatus.FAILED, GenerationStatus.CANCELLED)
        assert all(e.status is end.status for e in ends)  # both sides answer the one outcome
        assert await refunds(record.id) == 1 and end.credits_refunded == 750
    assert await ledger.balance_of("u1") == 750 * ROUNDS
    await check_ledger()


async def test_two_cancels_at_once_refund_once(worker_db) -> None:
    await grant("u1", 750 * ROUNDS)
    for i in range(ROUNDS):
        record = await charged(i)
        ends = await asyncio.gather(settlement.cancel(record, actor="u1"), settlement.cancel(record, actor="root"))
        assert [e.status for e in ends] == [GenerationStatus.CANCELLED] * 2
        assert await refunds(record.id) == 1
    assert await ledger.balance_of("u1") == 750 * ROUNDS
    await check_ledger()


async def test_cancel_before_charge_racing_the_charge_leaves_one_record(worker_db) -> None:
    await grant("u1", 750 * ROUNDS)
    for i in range(ROUNDS):
        new = new_generation(f"q{i}")

        async def charge(new: Any = new) -> bool:
            try:
                await settlement.charge(new, cost=750, attempts=1)
                return True
            except settlement.AlreadyExists:
                return False

        racers = [settlement.cancel_queued(new, submitted_at=generations.now()), charge()]
        first, second = await asyncio.gather(*(racers if i % 2 else reversed(racers)))
        cancelled_first, was_charged = (first, second) if i % 2 else (second, first)
        assert cancelled_first != was_charged  # exactly one of them wrote the record
        record = await generations.get(new.id)
        debits = await LedgerEntry.count().where(LedgerEntry.generation_id == new.id)
        assert (record.status, record.credits_charged, debits) == (
            (GenerationStatus.RUNNING, 750, 1) if was_charged else (GenerationStatus.CANCELLED, 0, 0)
        )
    await check_ledger()


async def test_a_job_cancelled_before_it_was_charged_never_runs(task: GenerationTask, seeded, storage) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    new = new_generation("job-1", model="scripted", prompt=job.prompt, source_key=job.source_key)
    assert await settlement.cancel_queued(new, submitted_at=generations.now())
    reply = await task.run(job, 1)
    assert (reply.status_code, body(reply)) == (409, CANCELLED)
    assert ScriptedModel.generations["job-1"] == 0 and not storage.uploads
    assert await LedgerEntry.count().where(LedgerEntry.generation_id == "job-1") == 0
    assert await ledger.balance_of("u1") == 1000


async def test_a_running_job_is_stopped_and_its_provider_request_cancelled(
    task: GenerationTask, seeded, storage: CountingStorage
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"gate": "never"})
    run = asyncio.create_task(task.run(job, 1))
    while ScriptedModel.generations["job-1"] == 0 or not (await generations.get("job-1")).provider_request_id:
        await asyncio.sleep(0.01)
    assert not task.cancel("another-job")  # not running here: ignored
    cancelled = await settlement.cancel(await generations.get("job-1"), actor="u1")
    assert cancelled.status is GenerationStatus.CANCELLED
    assert task.cancel("job-1")
    reply = await run
    assert (reply.status_code, body(reply)) == (409, CANCELLED)
    assert ScriptedModel.stopped["job-1"] == 1
    assert ScriptedModel.provider_cancels == ["req-job-1-1"]
    assert not storage.uploads
    assert await refunds("job-1") == 1 and await ledger.balance_of("u1") == 1000
    await check_ledger()


async def test_a_job_cancelled_while_its_worker_is_dead_is_answered_on_redelivery(
    task: GenerationTask, seeded, storage: CountingStorage
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"crash": [1]})
    with pytest.raises(SimulatedCrash):  # the worker dies with fal's request running
        await task.run(job, 1)
    record = await generations.get("job-1")
    await settlement.cancel(record, actor="u1")  # the API, meanwhile
    reply = await task.run(job, 2)  # the job's next delivery, on another worker
    assert (reply.status_code, body(reply)) == (409, CANCELLED)
    assert ScriptedModel.generations["job-1"] == 1  # not generated again
    assert ScriptedModel.provider_cancels == ["req-job-1-1"]  # the request the dead worker left
    assert not storage.uploads
    assert await refunds("job-1") == 1 and await ledger.balance_of("u1") == 1000
    await check_ledger()


async def test_a_redelivered_job_already_answered_as_cancelled_cancels_its_provider_request(
    task: GenerationTask, seeded
) -> None:
    from service.core.errors import Cancelled
    from service.generations.outcomes import error_reply

    await grant("u1", 1000)
    job = make_job(seeded, options={"crash": [1]})
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    await settlement.cancel(await generations.get("job-1"), actor="u1")
    await task.answered(job, error_reply("job-1", Cancelled()))  # the scheduler found the API's reply
    assert ScriptedModel.provider_cancels == ["req-job-1-1"]
    await task.answered(job, error_reply("job-1", AppError("boom", 500)))  # any other reply: nothing
    assert ScriptedModel.provider_cancels == ["req-job-1-1"]
