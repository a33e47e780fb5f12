"""``JobStream``'s operator methods on the real Redis: the queue's state, dead letters listed
newest first, requeued once (atomically, with the job's stale reply removed) and discarded."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.jobs.messages import DATA_FIELD, JobMessage, JobReply, encode
from service.jobs.stream import IdempotentRequest, JobStream
from tests.conftest import REDIS_URL


def job(job_id: str = "j1", *, model: str = "local", inbox: str | None = None, key: str | None = None) -> JobMessage:
    return JobMessage(
        job_id=job_id,
        user_id="u1",
        model=model,
        prompt="p",
        source_key="images/u1/a.png",
        duration="5s",
        inbox=inbox,
        submitted_at=1.0,
        idempotency_key=key,
    )


def failed(job_id: str = "j1") -> JobReply:
    return JobReply(job_id=job_id, status_code=400, body=msgspec.Raw(b'{"statusCode":400}'))


@pytest.fixture
async def stream(redis_prefix: str) -> JobStream:
    client = aioredis.Redis.from_url(REDIS_URL)
    made = JobStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    await made.ensure_groups(["local", "veo3"])
    yield made
    await client.aclose()


async def bury(stream: JobStream, message: JobMessage | bytes, reason: str = "unknown model 'x'") -> None:
    """Queue an entry, claim it and dead-letter it the way the worker does (with a reply)."""
    data = message if isinstance(message, bytes) else encode(message)
    await stream.redis.xadd(stream.keys.queue("local"), {DATA_FIELD: data})
    [entry] = await stream.claim(stream.redis, "w1", {"local": 1}, 100)
    reply = failed(entry.job.job_id) if entry.job else None
    await stream.dead_letter(entry, reason, reply)


async def test_an_empty_queue_reads_as_zeros(redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        state = await JobStream(client, Keys(redis_prefix), reply_ttl=1, meta_ttl=1, idempotency_ttl=1).queue_state()
    finally:
        await client.aclose()
    assert (state.waiting, state.running, state.dead_letters, state.workers, state.streams) == (0, 0, 0, [], [])


async def test_the_queue_state_shows_waiting_and_running_jobs_per_worker_and_stream(stream: JobStream) -> None:
    for n in range(5):
        await stream.submit(job(f"j{n}", model="local" if n % 2 else "veo3"))
    await stream.submit(job("nobody", model="orphan"))  # a model no worker has: its stream has no group
    held = await stream.claim(stream.redis, "worker-a", {"local": 1, "veo3": 1}, 100)
    state = await stream.queue_state(limit=10)
    assert (state.waiting, state.running) == (4, 2)
    assert {q.job.job_id for q in state.waiting_jobs} == {"j2", "j3", "j4", "nobody"}
    assert sorted((q.job.job_id, q.consumer, q.deliveries) for q in state.running_jobs) == [
        ("j0", "worker-a", 1),
        ("j1", "worker-a", 1),
    ]
    assert sorted(q.message_id for q in state.running_jobs) == sorted(d.message_id for d in held)
    assert [(w.name, w.pending) for w in state.workers] == [("worker-a", 2)]  # both streams' jobs
    loads = {(s.model, s.waiting, s.running, s.workers) for s in state.streams}
    assert loads == {("local", 1, 1, 1), ("veo3", 2, 1, 1), ("orphan", 1, 0, 0)}  # orphan: no worker reads it
    limited = await stream.queue_state(limit=1)
    assert (limited.waiting, len(limited.waiting_jobs), len(limited.running_jobs)) == (4, 1, 1)
    counts = await stream.queue_counts()
    assert (counts.waiting, counts.running, counts.dead_letters) == (4, 2, 0)


async def test_the_legacy_stream_shows_while_it_has_entries(stream: JobStream) -> None:
    await stream.redis.xadd(stream.keys.legacy_jobs_stream, {DATA_FIELD: encode(job("old"))})
    state = await stream.queue_state()
    assert [(s.model, s.stream, s.waiting) for s in state.streams if s.model is None] == [
        (None, stream.keys.legacy_jobs_stream, 1)
    ]
    assert state.waiting == 1 and (await stream.queue_counts()).waiting == 1


async def test_dead_letters_page_newest_first_with_their_reasons(stream: JobStream) -> None:
    for n in range(3):
        await bury(stream, job(f"j{n}"), reason=f"reason {n}")
    await bury(stream, b"not json", reason="unparseable job message")
    first, cursor = await stream.dead_letters(limit=3)
    assert [e.letter.reason for e in first] == ["unparseable job message", "reason 2", "reason 1"]
    assert first[0].job is None and first[1].job == job("j2")
    rest, end = await stream.dead_letters(limit=3, before=cursor)
    assert ([e.job.job_id for e in rest], end) == (["j0"], None)
    assert (await stream.queue_state()).dead_letters == 4


async def test_a_requeued_dead_letter_runs_again_as_a_new_entry_and_its_old_reply_is_gone(stream: JobStream) -> None:
    inbox = stream.keys.inbox("gone")
    await stream.submit(job("j1", inbox=inbox, key="k1"), IdempotentRequest("k1", "h"))
    [entry] = await stream.claim(stream.redis, "w1", {"local": 1}, 100)
    await stream.dead_letter(entry, "unknown model 'local'", failed("j1"))
    assert (await stream.lookup("u1", "k1")).reply is not None
    [dead], _ = await stream.dead_letters(limit=10)

    new_id = await stream.requeue_dead_letter(dead.id, dead.job)
    assert new_id is not None and new_id != entry.message_id
    [again] = await stream.claim(stream.redis, "w2", {"local": 1}, 100)  # back on its model's stream
    assert (again.message_id, again.count) == (new_id, 1)
    assert again.job == msgspec.structs.replace(job("j1", key="k1"), inbox=None)  # nobody waits any more
    assert await stream.reply_of("j1") is None  # a redelivery would otherwise answer with the old 400
    assert (await stream.lookup("u1", "k1")).reply is None  # a retry with the key follows the new run
    assert (await stream.meta("j1")).user_id == "u1"
    assert await stream.dead_letters(limit=10) == ([], None)


async def test_a_dead_letter_is_requeued_once_however_many_operators_click(stream: JobStream) -> None:
    await bury(stream, job("j1"))
    [dead], _ = await stream.dead_letters(limit=1)
    results = await asyncio.gather(*(stream.requeue_dead_letter(dead.id, dead.job) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert await stream.redis.xlen(stream.keys.queue("local")) == 2  # the original (acknowledged) and one requeue
    assert await stream.discard_dead_letter(dead.id) is False


async def test_a_discarded_dead_letter_is_gone_and_nothing_is_queued(stream: JobStream) -> None:
    await bury(stream, job("j1"))
    [dead], _ = await stream.dead_letters(limit=1)
    assert await stream.dead_letter_of(dead.id) == dead
    assert await stream.discard_dead_letter(dead.id) is True
    assert await stream.dead_letter_of(dead.id) is None
    assert await stream.requeue_dead_letter(dead.id, dead.job) is None
    assert (await stream.queue_state()).waiting == 0
