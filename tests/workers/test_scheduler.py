"""The scheduler on the real Redis: reclaim, leases, attempts, poison, outages, shutdown.

Timeouts below are safety nets (a hung test fails instead of hanging), never assertions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.generations import repository as generations
from service.generations.task import GenerationTask
from service.jobs.messages import DATA_FIELD, EntryRef, JobMessage, JobReply, decode_dead_letter, encode
from service.jobs.stream import JobStream
from service.ledger import service as ledger
from tests.conftest import REDIS_URL
from tests.factories import grant
from tests.workers.conftest import Redis, Schedulers, body, make_job
from tests.workers.models import ScriptedModel, SimulatedCrash
from workers.scheduler import Scheduler

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def until(condition: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def reply_of(rds: Redis, job: JobMessage) -> JobReply | None:
    return await rds.reply(job)


def replied(rds: Redis, job: JobMessage) -> Callable[[], Awaitable[JobReply | None]]:
    return lambda: reply_of(rds, job)


async def settled(rds: Redis) -> bool:
    """Every entry of every model's stream delivered and acknowledged (acknowledged entries are
    trimmed later, by prune)."""
    for stream in await rds.streams():
        [group] = await rds.client.xinfo_groups(stream)
        last = group["last-delivered-id"].decode()
        if await rds.client.xrange(stream, min=f"({last}", max="+"):
            return False
    return not await rds.pending()


async def debits(generation_id: str) -> int:
    from service.ledger.tables import LedgerEntry

    return await LedgerEntry.count().where((LedgerEntry.generation_id == generation_id) & (LedgerEntry.kind == "debit"))


async def test_a_job_is_replied_with_an_expiry_then_acknowledged(schedulers: Schedulers, rds: Redis, seeded) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    await rds.queue(job)
    schedulers.run("a")
    reply = await until(replied(rds, job), "the reply")
    assert reply.status_code == 200, body(reply)
    await until(lambda: settled(rds), "the ack")
    assert 0 < await rds.client.ttl(rds.keys.reply(job.job_id)) <= 60


async def test_a_dead_workers_job_is_reclaimed_after_the_lease_and_resumed_without_a_second_charge(
    schedulers: Schedulers, rds: Redis, seeded, task: GenerationTask, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    await rds.queue(job)
    # a worker takes the job and dies right after the debit
    await rds.client.xreadgroup(rds.keys.jobs_group, "dead", {rds.keys.queue("scripted"): ">"}, count=1)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    schedulers.run("b", lease_seconds=0.5)
    reply = await until(replied(rds, job), "the reclaimed job's reply")
    assert reply.status_code == 200, body(reply)
    assert body(reply)["credits"] == {"used": 750, "balance": 250.0}
    await until(lambda: settled(rds), "the ack")
    assert await debits("job-1") == 1
    assert (await generations.get("job-1")).attempts == 2  # the second delivery generated it


async def test_a_live_worker_keeps_its_lease_on_a_job_longer_than_the_lease(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"sleep": 2.0})  # four leases long
    await rds.queue(job)
    owner = schedulers.run("owner", lease_seconds=0.5)
    await until(lambda: asyncio.sleep(0, bool(owner.active)), "the owner to take the job")
    schedulers.run("other", lease_seconds=0.5)
    reply = await until(replied(rds, job), "the reply")
    assert reply.status_code == 200, body(reply)
    assert ScriptedModel.generations["job-1"] == 1
    assert (await generations.get("job-1")).attempts == 1  # never redelivered


async def test_a_worker_whose_job_was_taken_stops_it_without_replying(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"gate": "never"})
    msg_id = await rds.queue(job)
    stalled = schedulers.run("stalled", lease_seconds=0.5)
    await until(lambda: asyncio.sleep(0, ScriptedModel.generations["job-1"] == 1), "the generation to start")
    # another worker reclaimed it (as if this one had been frozen past its lease)
    await rds.client.xclaim(rds.keys.queue("scripted"), rds.keys.jobs_group, "thief", 0, [msg_id], justid=True)
    await until(lambda: asyncio.sleep(0, not stalled.active), "the stalled worker to drop the job")
    assert await reply_of(rds, job) is None
    pending = await rds.pending()
    assert [p["consumer"] for p in pending] == [b"thief"]


async def test_the_delivery_after_max_attempts_fails_the_job_with_the_spec_500(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    msg_id = await rds.queue(job)
    await rds.client.xreadgroup(rds.keys.jobs_group, "dead", {rds.keys.queue("scripted"): ">"}, count=1)
    await rds.client.xclaim(
        rds.keys.queue("scripted"),
        rds.keys.jobs_group,
        "dead",
        0,
        [msg_id],
        idle=60_000,
        retrycount=seeded.job_max_attempts,
        justid=True,
    )
    schedulers.run("b", lease_seconds=0.5)
    reply = await until(replied(rds, job), "the reply")
    assert reply.status_code == 500
    assert body(reply)["message"].startswith("Image-to-video generation failed: the job was interrupted")
    await until(lambda: settled(rds), "the ack")
    assert await generations.get("job-1") is None and await ledger.balance_of("u1") == 1000


async def test_poison_messages_are_dead_lettered_and_never_block_the_group(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 1000)
    await rds.ensure_group()
    stream = rds.keys.queue("scripted")
    await rds.client.xadd(stream, {DATA_FIELD: b"{not json"})
    await rds.client.xadd(stream, {b"other": b"field"})
    await rds.client.xadd(stream, {DATA_FIELD: json.dumps({"job_id": "half", "user_id": "u1"}).encode()})
    unknown = make_job(seeded, job_id="unknown-model", model="no-such-model")
    await rds.client.xadd(stream, {DATA_FIELD: encode(unknown)})  # on a stream it does not belong to
    good = make_job(seeded, job_id="good")
    await rds.queue(good)
    schedulers.run("a")
    assert (await until(replied(rds, good), "the good job")).status_code == 200
    refused = await until(replied(rds, unknown), "the unknown model's reply")
    assert refused.status_code == 400
    assert body(refused)["message"][0].startswith("model must be one of the following values: ")
    half = make_job(seeded, job_id="half")
    assert (await until(replied(rds, half), "the half message's reply")).status_code == 500
    await until(lambda: settled(rds), "every message acknowledged")
    dead = await rds.client.xrange(rds.keys.dead_letter_stream)
    reasons = sorted(decode_dead_letter(fields[DATA_FIELD]).reason.split(":")[0] for _, fields in dead)
    assert reasons == [
        "unknown model 'no-such-model'",
        "unparseable job message",
        "unparseable job message",
        "unparseable job message",
    ]
    assert await ledger.balance_of("u1") == 250


class FlakyTask:
    """The real task behind an outage: the first ``failures`` runs raise a connection error."""

    def __init__(self, inner: GenerationTask, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0
        self.registry = inner.registry

    def accepts(self, job: JobMessage) -> bool:
        return self.inner.accepts(job)

    async def run(self, job: JobMessage, delivery: int, *args: Any) -> JobReply:
        self.calls += 1
        if self.calls <= self.failures:
            raise RedisConnectionError("Connection refused") if self.calls % 2 else OSError("database unreachable")
        return await self.inner.run(job, delivery, *args)


async def test_an_outage_is_ridden_out_and_not_counted_as_an_attempt(
    schedulers: Schedulers, rds: Redis, seeded, task: GenerationTask
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    await rds.queue(job)
    flaky = FlakyTask(task, failures=3)
    schedulers.run("a", lease_seconds=0.5, task=flaky)
    reply = await until(replied(rds, job), "the reply")
    assert reply.status_code == 200, body(reply)
    assert flaky.calls == 4
    assert (await generations.get("job-1")).attempts == 1


async def test_a_crash_before_the_ack_is_acknowledged_by_the_next_worker_without_rerunning(
    schedulers: Schedulers, rds: Redis, seeded, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    await rds.queue(job)
    crash_at("before_ack")  # the record is terminal; the reply and the ack go together, and never went
    schedulers.run("a", lease_seconds=0.5)
    reply = await until(replied(rds, job), "the reply of whoever reclaims it")
    await until(lambda: settled(rds), "the ack")
    assert reply.status_code == 200 and body(reply)["credits"] == {"used": 750, "balance": 250.0}
    assert ScriptedModel.generations["job-1"] == 1


async def test_shutdown_lets_running_jobs_finish_within_the_grace(schedulers: Schedulers, rds: Redis, seeded) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"sleep": 0.5})
    await rds.queue(job)
    worker = schedulers.make("a")
    runner = schedulers.start(worker)
    await until(lambda: asyncio.sleep(0, bool(worker.active)), "the job to start")
    worker.stop()
    await runner
    assert await worker.shutdown(60) == 0
    assert (await reply_of(rds, job)).status_code == 200
    assert await settled(rds)


async def test_shutdown_hands_over_unfinished_jobs_without_counting_an_attempt(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"gate": "open-later"})
    await rds.queue(job)
    leaving = schedulers.make("leaving", lease_seconds=30)
    runner = schedulers.start(leaving)
    await until(lambda: asyncio.sleep(0, ScriptedModel.generations["job-1"] == 1), "the job to start")
    leaving.stop()
    await runner
    assert await leaving.shutdown(0.1) == 1
    (entry,) = await rds.pending()
    assert entry["times_delivered"] == 0 and entry["time_since_delivered"] >= 30_000
    ScriptedModel.gates.setdefault("open-later", asyncio.Event()).set()
    schedulers.run("staying", lease_seconds=30)  # reclaims at once: the handed-over job is already idle
    reply = await until(replied(rds, job), "the reply from the other worker")
    assert reply.status_code == 200, body(reply)
    assert (await generations.get("job-1")).attempts == 1
    assert await debits("job-1") == 1


async def test_a_lost_consumer_group_is_recreated(schedulers: Schedulers, rds: Redis, seeded) -> None:
    await grant("u1", 1000)
    worker = schedulers.run("a")
    stream = rds.keys.queue("scripted")
    await until(lambda: rds.client.exists(stream), "the group")
    await rds.client.delete(stream)  # Redis restarted without persistence
    job = make_job(seeded)
    await rds.client.xadd(stream, {DATA_FIELD: encode(job)})  # the API queues the next job
    assert (await until(replied(rds, job), "the reply")).status_code == 200
    assert worker.stream.keys.jobs_group.encode() in [g["name"] for g in await rds.client.xinfo_groups(stream)]


async def test_the_first_reply_stands_and_is_copied_to_the_idempotency_key(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    stream = schedulers.make("a").stream
    job = make_job(seeded, idempotency_key="key-1")
    idem = rds.keys.idempotency("u1", "key-1")
    await rds.client.hset(idem, mapping={"job_id": "job-1", "body_hash": "h", "created_at": "0"})
    await rds.client.expire(idem, 100)
    first = JobReply(job_id="job-1", status_code=200, body=msgspec.Raw(b'{"n":1}'))
    ref = EntryRef(rds.keys.queue("scripted"), "0-1")
    await stream.complete(ref, job, first)
    await stream.complete(ref, job, JobReply(job_id="job-1", status_code=500, body=msgspec.Raw(b'{"n":2}')))
    assert await reply_of(rds, job) == first
    assert (await stream.lookup("u1", "key-1")).reply == first
    assert 0 < await rds.client.ttl(idem) <= 100
    other = make_job(seeded, job_id="job-2", idempotency_key="expired-key")
    await stream.complete(EntryRef(rds.keys.queue("scripted"), "0-2"), other, first)
    assert not await rds.client.exists(rds.keys.idempotency("u1", "expired-key"))  # never recreated without a TTL


async def test_acknowledged_entries_are_trimmed_and_pending_ones_kept(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    stream = schedulers.make("a").stream
    ids = [await rds.queue(make_job(seeded, job_id=f"job-{i}")) for i in range(4)]
    await rds.client.xreadgroup(rds.keys.jobs_group, "w", {rds.keys.queue("scripted"): ">"}, count=3)
    await rds.client.xack(rds.keys.queue("scripted"), rds.keys.jobs_group, ids[0], ids[2])
    trimmed, _ = await stream.prune(await rds.streams(), 3_600_000)
    # ids[0] is gone; ids[1] is pending (kept, and so is everything after it); ids[3] was never delivered
    assert trimmed == 1
    assert [m.decode() for m, _ in await rds.client.xrange(rds.keys.queue("scripted"))] == ids[1:]


async def test_consumers_of_dead_processes_are_pruned_when_they_hold_nothing(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    worker = schedulers.make("a")
    await rds.queue(make_job(seeded))
    await rds.client.xreadgroup(rds.keys.jobs_group, "holds-a-job", {rds.keys.queue("scripted"): ">"}, count=1)
    await rds.client.xreadgroup(rds.keys.jobs_group, "ghost", {rds.keys.queue("scripted"): ">"}, count=1)
    await asyncio.sleep(0.01)
    await worker.stream.prune(worker.streams, 0)
    names = [c["name"] for c in await rds.client.xinfo_consumers(rds.keys.queue("scripted"), rds.keys.jobs_group)]
    assert names == [b"holds-a-job"]


async def test_a_worker_that_reclaims_its_own_running_job_does_not_run_it_twice(
    schedulers: Schedulers, rds: Redis, seeded
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"gate": "own"})
    msg_id = await rds.queue(job)
    worker = schedulers.run("a", lease_seconds=30)
    starts: list[str] = []
    start = worker._start
    worker._start = lambda entry, since: (starts.append(entry.ref), start(entry, since))[1]  # type: ignore[method-assign]
    await until(lambda: asyncio.sleep(0, ScriptedModel.generations["job-1"] == 1), "the job to start")
    ref = EntryRef(rds.keys.queue("scripted"), msg_id)
    running = worker.active[ref]
    # as if this worker's loop had stalled past the lease: its own job is idle long enough to reclaim
    await rds.client.xclaim(rds.keys.queue("scripted"), rds.keys.jobs_group, "a", 0, [msg_id], idle=60_000, justid=True)
    worker.claimer.reclaim_at = 0.0  # reclaim at the next turn of its loop
    await until(lambda: asyncio.sleep(0, starts == [ref, ref]), "the worker to reclaim its own job")
    assert list(worker.active.values()) == [running]  # the running one goes on; no second run
    ScriptedModel.gates.setdefault("own", asyncio.Event()).set()
    assert (await until(replied(rds, job), "the reply")).status_code == 200
    await until(lambda: settled(rds), "the ack")
    await until(lambda: asyncio.sleep(0, not worker.active), "the job's task to end")
    assert ScriptedModel.generations["job-1"] == 1


# Shutdown ends the background loops even when a cancellation is swallowed inside a Redis call (on
# Python 3.11 ``asyncio.wait_for``, which redis-py writes every command through, returns the
# command's result instead when both land in the same loop round). One ``cancel()`` and an
# unbounded wait left the lease renewal or the cancels follower running: an embedded stack's
# teardown hung on it.


class SwallowingStream(JobStream):
    """The first ``read_cancels`` blocks, and a cancellation that reaches it is swallowed: the call
    returns as if it had read nothing, and the loop reads on."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.entered = asyncio.Event()
        self.swallowed = 0

    async def read_cancels(self, reader: aioredis.Redis, after: str, block_ms: int) -> tuple[str, list[str]]:
        if self.swallowed:
            return await super().read_cancels(reader, after, block_ms)
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.swallowed += 1
        return after, []


async def test_shutdown_ends_a_loop_whose_cancellation_was_swallowed(task: GenerationTask, redis_prefix: str) -> None:
    client = make_redis(REDIS_URL, max_connections=8)
    readers = [make_dedicated_redis(REDIS_URL), make_dedicated_redis(REDIS_URL)]
    stream = SwallowingStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    scheduler = Scheduler(stream, task, readers[0], name="a", concurrency=1, lease_seconds=5, cancel_reader=readers[1])
    try:
        runner = asyncio.create_task(scheduler.run())
        await asyncio.wait_for(stream.entered.wait(), 30)  # safety net only
        upkeep = list(scheduler._upkeep)
        scheduler.stop()
        await runner
        # Before the fix this awaited the cancels follower for ever; the bound is a safety net.
        await asyncio.wait_for(scheduler.shutdown(0), 30)
        assert stream.swallowed == 1
        assert all(t.done() for t in upkeep)
    finally:
        for made in (client, *readers):
            await made.aclose()
