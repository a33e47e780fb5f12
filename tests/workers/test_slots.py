"""Per-model slots: the counters alone, then the scheduler on the real Redis with two models.

Timeouts below are safety nets (a hung test fails instead of hanging), never assertions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from models_registry.registry import ModelRegistry
from service.jobs.messages import DATA_FIELD, encode
from tests.factories import grant
from tests.workers.conftest import Redis, Schedulers, body, make_job
from tests.workers.models import ScriptedModel
from tests.workers.test_scheduler import replied, reply_of, settled, until
from workers.slots import ModelSlots, model_limits


async def test_a_full_model_queues_its_jobs_first_come_first_served_and_frees_slots_in_turn() -> None:
    slots = ModelSlots({"a": 1, "b": 2}, default=1)
    assert slots.free_slots() == {"a": 1, "b": 2}
    assert slots.take("a") is None
    first, second = slots.take("a"), slots.take("a")  # beyond its slots (a stale legacy job): they wait
    assert first is not None and second is not None
    assert slots.waiting == 2 and slots.free_slots() == {"b": 2}  # nothing more of a is claimed
    assert slots.take("b") is None and slots.free_slots() == {"b": 1}
    assert slots.take("b") is None and slots.free_slots() == {}  # no model has a free slot
    slots.give_back("a", None)  # the running one ends: its slot passes to the first in line
    assert first.done() and not second.done() and slots.running["a"] == 1
    slots.give_back("a", second)  # cancelled while waiting: it never held a slot
    slots.give_back("a", first)
    assert slots.running == {"a": 0, "b": 2} and slots.waiting == 0 and slots.free_slots() == {"a": 1}


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


async def undelivered(rds: Redis, model: str) -> int:
    """Entries of ``model``'s stream no worker has been given (after the group's position)."""
    [group] = await rds.client.xinfo_groups(rds.keys.queue(model))
    last = group["last-delivered-id"].decode()
    return len(await rds.client.xrange(rds.keys.queue(model), min=f"({last}", max="+"))


async def delivered(rds: Redis, model: str) -> dict[str, int]:
    """Message id -> deliveries, of ``model``'s entries delivered and not acknowledged."""
    rows = await rds.client.xpending_range(rds.keys.queue(model), rds.keys.jobs_group, min="-", max="+", count=100)
    return {r["message_id"].decode(): r["times_delivered"] for r in rows}


def claims_of(worker: Any) -> list[dict[str, int]]:
    """Record the free slots each claim of ``worker`` asks for."""
    asked: list[dict[str, int]] = []
    claim = worker.stream.claim

    async def recording(reader: Any, consumer: str, free: dict[str, int], block_ms: int) -> Any:
        asked.append(dict(free))
        return await claim(reader, consumer, free, block_ms)

    worker.stream.claim = recording
    return asked


@pytestmark_db
async def test_a_full_models_jobs_stay_undelivered_in_its_stream_while_an_idle_models_jobs_run(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 10_000)
    busy = [make_job(seeded, job_id=f"busy-{i}", options={"gate": "busy"}) for i in range(3)]
    idle = [make_job(seeded, job_id=f"idle-{i}", model="scripted-other") for i in range(2)]
    for job in [*busy, *idle]:  # the idle model's jobs queued after the busy ones
        await rds.queue(job)
    worker = schedulers.make("a", limits={"scripted": 2, "scripted-other": 2})
    asked = claims_of(worker)
    schedulers.start(worker)
    for job in idle:
        reply = await until(replied(rds, job), "an idle model's reply")
        assert reply.status_code == 200, body(reply)

    async def two_started() -> bool:  # a slot is taken before the charge, the generation starts after it
        return sum(ScriptedModel.generations[j.job_id] for j in busy) == 2

    await until(two_started, "two busy generations started")
    seen = len(asked)
    await until(lambda: asyncio.sleep(0, len(asked) > seen), "a claim while the busy model is full")
    assert "scripted" not in asked[-1]  # a full model's stream is not read at all
    assert await undelivered(rds, "scripted") == 1  # the third busy job: never delivered to anyone
    assert sorted((await delivered(rds, "scripted")).values()) == [1, 1]  # the two running, once each
    assert worker.slots.waiting == 0  # nothing claimed waits here for a slot
    late = make_job(seeded, job_id="idle-late", model="scripted-other")
    await rds.queue(late)  # the idle model's jobs keep being claimed
    assert (await until(replied(rds, late), "the late idle job's reply")).status_code == 200
    assert await undelivered(rds, "scripted") == 1
    ScriptedModel.gates.setdefault("busy", asyncio.Event()).set()
    for job in busy:
        assert (await until(replied(rds, job), "a busy job's reply")).status_code == 200
    await until(lambda: settled(rds), "every ack")
    assert all(ScriptedModel.generations[j.job_id] == 1 for j in busy)
    await until(lambda: asyncio.sleep(0, not worker.active), "every job's task to end")  # acked, then it ends
    assert worker.slots.running == {"scripted": 0, "scripted-other": 0}


@pytestmark_db
async def test_a_worker_claims_at_most_its_free_slots_of_a_model(schedulers: Schedulers, rds: Redis, seeded) -> None:
    await grant("u1", 10_000)
    jobs = [make_job(seeded, job_id=f"job-{i}", options={"gate": "slow"}) for i in range(5)]
    for job in jobs:
        await rds.queue(job)
    first = schedulers.make("a", limits={"scripted": 2, "scripted-other": 1})
    asked = claims_of(first)
    schedulers.start(first)
    await until(lambda: asyncio.sleep(0, first.slots.running["scripted"] == 2), "two slots taken")
    assert all(free.get("scripted", 0) <= 2 for free in asked)
    seen = len(asked)
    await until(lambda: asyncio.sleep(0, len(asked) > seen), "a claim while the model is full")
    assert (await undelivered(rds, "scripted"), len(await delivered(rds, "scripted"))) == (3, 2)
    second = schedulers.run("b", limits={"scripted": 1, "scripted-other": 1})  # a worker with one free slot
    await until(lambda: asyncio.sleep(0, second.slots.running["scripted"] == 1), "its slot taken")
    assert (await undelivered(rds, "scripted"), len(await delivered(rds, "scripted"))) == (2, 3)
    ScriptedModel.gates.setdefault("slow", asyncio.Event()).set()
    for job in jobs:
        assert (await until(replied(rds, job), "a reply")).status_code == 200
    await until(lambda: settled(rds), "every ack")
    assert all(ScriptedModel.generations[j.job_id] == 1 for j in jobs)


@pytestmark_db
async def test_a_freed_slot_of_a_full_model_ends_the_blocked_claim_on_the_others(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 10_000)
    jobs = [make_job(seeded, job_id=f"job-{i}", options={"gate": f"g{i}"}) for i in range(2)]
    for job in jobs:
        await rds.queue(job)
    await rds.ensure_group("scripted-other")
    worker = schedulers.make("a", limits={"scripted": 1, "scripted-other": 1})
    woken: list[int] = []
    unblock = worker.claimer._unblock

    async def recording(client_id: int) -> None:
        woken.append(client_id)
        await unblock(client_id)

    worker.claimer._unblock = recording  # type: ignore[method-assign]
    schedulers.start(worker)
    await until(lambda: asyncio.sleep(0, ScriptedModel.generations["job-0"] == 1), "the first job to start")
    assert await undelivered(rds, "scripted") == 1  # the second waits in the stream, not here
    ScriptedModel.gates.setdefault("g1", asyncio.Event()).set()
    ScriptedModel.gates.setdefault(
        "g0", asyncio.Event()
    ).set()  # the slot frees while the claim blocks on the other model
    for job in jobs:
        assert (await until(replied(rds, job), "a reply")).status_code == 200
    assert woken  # the blocked read was ended, not waited out


@pytestmark_db
async def test_a_job_for_a_model_no_worker_has_waits_in_its_stream(schedulers: Schedulers, rds: Redis, seeded) -> None:
    await grant("u1", 10_000)
    orphan = make_job(seeded, job_id="orphan", model="scripted-other")
    await rds.client.sadd(rds.keys.queues, "scripted-other")
    await rds.client.xadd(rds.keys.queue("scripted-other"), {DATA_FIELD: encode(orphan)})  # the API's XADD
    job = make_job(seeded)
    await rds.queue(job)
    schedulers.run("a", limits={"scripted": 1})  # has no scripted-other
    assert (await until(replied(rds, job), "the reply")).status_code == 200
    assert await reply_of(rds, orphan) is None
    assert await rds.client.xlen(rds.keys.queue("scripted-other")) == 1  # waiting, not dead-lettered
    assert await rds.client.xlen(rds.keys.dead_letter_stream) == 0


@pytestmark_db
async def test_the_legacy_shared_streams_jobs_are_moved_or_reclaimed_and_run_once(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 10_000)
    legacy, group = rds.keys.legacy_jobs_stream, rds.keys.jobs_group
    await rds.client.xgroup_create(legacy, group, id="0", mkstream=True)
    jobs = [make_job(seeded, job_id=f"old-{i}") for i in range(3)]
    other = make_job(seeded, job_id="other", model="no-worker-here")
    for job in [*jobs, other]:
        await rds.client.xadd(legacy, {DATA_FIELD: encode(job)})
    await rds.client.xreadgroup(group, "old-worker", {legacy: ">"}, count=1)  # an old worker had one, then died
    [(held, _)] = [(p["message_id"], p) for p in await rds.client.xpending_range(legacy, group, "-", "+", 10)]
    await rds.client.xclaim(legacy, group, "old-worker", 0, [held], idle=60_000, justid=True)
    schedulers.run("a", limits={"scripted": 2})
    for job in jobs:
        assert (await until(replied(rds, job), "an old job's reply")).status_code == 200
    await until(lambda: settled(rds), "every ack on the model's stream")
    assert await rds.client.xpending(legacy, group) == {"pending": 0, "min": None, "max": None, "consumers": []}
    [info] = await rds.client.xinfo_groups(legacy)
    after = info["last-delivered-id"].decode()
    [(_, fields)] = await rds.client.xrange(legacy, min=f"({after}")  # left: the job of a model this worker lacks
    assert fields[DATA_FIELD] == encode(other)
    assert all(ScriptedModel.generations[j.job_id] == 1 for j in jobs)


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
    worker = schedulers.run("a", limits={"scripted": 2, "scripted-other": 2})
    reply = await until(replied(rds, idle), "the idle model's reply")
    assert reply.status_code == 200, body(reply)
    assert worker.slots.running["scripted"] == 2 and worker.slots.waiting == 0  # the third waits in its stream

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
