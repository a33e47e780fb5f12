"""Per-model slots: the counters alone, then the scheduler on the real Redis with two models.

Timeouts below are safety nets (a hung test fails instead of hanging), never assertions.
"""

from __future__ import annotations

import asyncio

import pytest

from models_registry.registry import ModelRegistry
from tests.factories import grant
from tests.workers.conftest import Redis, Schedulers, body, make_job
from tests.workers.models import ScriptedModel
from tests.workers.test_scheduler import replied, settled, until
from workers.slots import ModelSlots, model_limits


async def test_a_full_model_queues_its_jobs_first_come_first_served_and_frees_slots_in_turn() -> None:
    slots = ModelSlots({"a": 1, "b": 2}, default=1, prefetch=3)
    assert slots.claimable() == 3
    assert slots.take("a") is None
    first, second = slots.take("a"), slots.take("a")
    assert first is not None and second is not None
    assert slots.waiting == 2 and slots.claimable() == 1  # b's slots, less what waits
    assert slots.take("b") is None and slots.claimable() == 1
    assert slots.take("b") is None and slots.claimable() == 0  # no model has a free slot
    slots.give_back("a", None)  # the running one ends: its slot passes to the first in line
    assert first.done() and not second.done() and slots.running["a"] == 1
    slots.give_back("a", second)  # cancelled while waiting: it never held a slot
    slots.give_back("a", first)
    assert slots.running == {"a": 0, "b": 2} and slots.waiting == 0


async def test_no_more_is_claimed_while_prefetch_jobs_wait_for_a_slot() -> None:
    slots = ModelSlots({"a": 1, "b": 100}, default=1, prefetch=2)
    slots.take("a")
    slots.take("a")
    assert slots.claimable() == 1
    slots.take("a")
    assert slots.claimable() == 0  # b has room, but two of a's jobs already wait here


def test_slots_come_from_the_override_then_the_plugin_then_the_default() -> None:
    from tests.workers.models import registry

    models = registry()
    limits = model_limits(models, {"veo3": 900}, default=7)
    assert limits["veo3"] == 900
    assert limits["local"] == models.get("local").max_concurrency >= 1  # the cores
    assert limits["scripted"] == 7  # declares none
    with pytest.raises(SystemExit, match="not installed"):
        model_limits(models, {"nope": 3}, default=7)


def test_a_plugin_with_a_bad_max_concurrency_is_refused() -> None:
    from models_registry.registry import PluginError

    class Greedy(ScriptedModel):
        name = "greedy"
        max_concurrency = 0

    with pytest.raises(PluginError, match="max_concurrency must be a positive int"):
        ModelRegistry.load(extra=(Greedy,))


pytestmark_db = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytestmark_db
async def test_jobs_of_an_idle_model_run_while_a_busy_models_slots_are_full(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 10_000)
    busy = [make_job(seeded, job_id=f"busy-{i}", options={"gate": "busy"}) for i in range(3)]
    idle = make_job(seeded, job_id="idle", model="scripted-other")
    for job in busy:
        await rds.queue(job)
    await rds.queue(idle)
    worker = schedulers.run("a", limits={"scripted": 2, "scripted-other": 2}, prefetch=8)
    reply = await until(replied(rds, idle), "the idle model's reply")
    assert reply.status_code == 200, body(reply)
    assert worker.slots.running["scripted"] == 2 and worker.slots.waiting == 1  # the third waits its turn

    async def two_started() -> bool:  # a slot is taken before the charge, the generation starts after it
        return sum(ScriptedModel.generations[j.job_id] for j in busy) == 2

    await until(two_started, "two busy generations started")
    await asyncio.sleep(0.2)
    assert sum(ScriptedModel.generations[j.job_id] for j in busy) == 2  # and no third, while two slots are full
    ScriptedModel.gates.setdefault("busy", asyncio.Event()).set()
    for job in busy:
        assert (await until(replied(rds, job), "a busy job's reply")).status_code == 200
    await until(lambda: settled(rds), "every ack")
    await until(lambda: asyncio.sleep(0, not worker.active), "every job's task to end")  # acked, then it ends
    assert worker.slots.running["scripted"] == 0


@pytestmark_db
async def test_jobs_waiting_for_a_full_model_are_handed_back_so_an_idle_models_job_runs(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 10_000)
    busy = [make_job(seeded, job_id=f"busy-{i}", options={"gate": "busy"}) for i in range(3)]
    idle = make_job(seeded, job_id="idle", model="scripted-other")
    for job in [*busy, idle]:  # the idle model's job is last in the stream, behind the busy ones
        await rds.queue(job)
    worker = schedulers.run("a", limits={"scripted": 1, "scripted-other": 1}, prefetch=1, lease_seconds=3)
    reply = await until(replied(rds, idle), "the idle model's reply")
    assert reply.status_code == 200, body(reply)

    async def one_started() -> bool:  # the busy job holding the slot may start after the idle one ends
        return sum(ScriptedModel.generations[j.job_id] for j in busy) == 1

    await until(one_started, "the busy job holding the slot started")  # not the other two: handed back
    deliveries = {p["message_id"]: p["times_delivered"] for p in await rds.pending()}
    assert all(n <= 2 for n in deliveries.values()), deliveries
    ScriptedModel.gates.setdefault("busy", asyncio.Event()).set()
    for job in busy:  # taken back (by this worker, a reclaim period later) and run, one at a time
        assert (await until(replied(rds, job), "a busy job's reply", timeout=60)).status_code == 200
    await until(lambda: settled(rds), "every ack")
    assert all(ScriptedModel.generations[j.job_id] == 1 for j in busy)
    await until(lambda: asyncio.sleep(0, not worker.active), "every job's task to end")  # acked, then it ends
    assert worker.slots.running == {"scripted": 0, "scripted-other": 0}
