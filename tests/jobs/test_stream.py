"""``JobStream`` on the real Redis: what the happy path costs, leases taken over, hand-over, and
that replies and inboxes never outlive their purpose."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import msgspec
import pytest
import redis.asyncio as aioredis

from service.core.embedded_redis import EmbeddedRedis
from service.core.keys import Keys
from service.jobs import stream as stream_module
from service.jobs.messages import (
    DATA_FIELD,
    EntryRef,
    JobEvent,
    JobMessage,
    JobReply,
    decode_dead_letter,
    decode_reply,
    encode,
)
from service.jobs.stream import INBOX_TTL_SECONDS, JobStream
from tests.conftest import REDIS_URL


def job(job_id: str = "j1", *, inbox: str | None = None, model: str = "local") -> JobMessage:
    return JobMessage(
        job_id=job_id,
        user_id="u1",
        model=model,
        prompt="p",
        source_key="images/u1/a.png",
        duration="5s",
        inbox=inbox,
        submitted_at=1.0,
    )


def reply(job_id: str = "j1", n: int = 1) -> JobReply:
    return JobReply(job_id=job_id, status_code=200, body=msgspec.Raw(b'{"n":%d}' % n))


@pytest.fixture
async def stream(redis_prefix: str) -> JobStream:
    client = aioredis.Redis.from_url(REDIS_URL)
    made = JobStream(client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    await made.ensure_groups(["local", "veo3"])
    yield made
    await client.aclose()


async def calls(client: aioredis.Redis) -> Counter[str]:
    stats = await client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"})


async def test_a_job_costs_nine_commands_from_submit_to_ack() -> None:
    with EmbeddedRedis() as url:  # a server of its own: every command counted is this job's
        client = aioredis.Redis.from_url(url)
        stream = JobStream(client, Keys("t"), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
        await stream.ensure_groups(["local"])
        inbox = stream.keys.inbox("p1")
        await stream.open_inbox(inbox)
        before = await calls(client)
        await stream.submit(job(inbox=inbox))
        [entry] = await stream.claim(client, "w1", {"local": 10}, 100)
        await stream.complete(entry.ref, entry.job, reply())
        _, [notified] = await stream.read_inbox(client, inbox, "0-0", 100)
        used = await calls(client) - before
        await client.aclose()
    # the API: SET the owner record, XADD to the model's stream, SADD the model (one round trip); the
    # worker: XREADGROUP, then SET NX the reply, XADD it to the inbox, XADD the job's "done" event
    # (Server-Sent Events), XACK; the API's inbox reader: XREAD
    assert used == Counter({"set": 2, "xadd": 3, "sadd": 1, "xreadgroup": 1, "xack": 1, "xread": 1})
    assert notified == reply() and entry.count == 1 and entry.job == job(inbox=inbox)


async def test_a_process_lists_a_model_with_its_first_job_and_then_once_a_minute(stream: JobStream) -> None:
    await stream.redis.delete(stream.keys.queues)
    await stream.submit(job(job_id="j1"))
    assert await stream.queue_models() == ["local"]
    await stream.redis.delete(stream.keys.queues)  # as if an operator removed it: not added back at once
    await stream.submit(job(job_id="j2"))
    assert await stream.queue_models() == []
    assert stream._listed["local"] > time.monotonic() + stream_module.LIST_AGAIN_SECONDS - 5
    stream._listed["local"] = time.monotonic()  # a minute later
    await stream.submit(job(job_id="j3"))
    assert await stream.queue_models() == ["local"]


async def test_the_first_reply_stands_and_an_unknown_inbox_is_never_created(stream: JobStream) -> None:
    await stream.submit(job(inbox=stream.keys.inbox("gone")))
    [entry] = await stream.claim(stream.redis, "w1", {"local": 10}, 100)
    await stream.complete(entry.ref, entry.job, reply(n=1))
    await stream.complete(entry.ref, entry.job, reply(n=2))
    assert await stream.reply_of("j1") == reply(n=1)
    assert 0 < await stream.redis.ttl(stream.keys.reply("j1")) <= 60
    assert not await stream.redis.exists(stream.keys.inbox("gone"))


async def test_renewal_keeps_only_what_the_consumer_still_holds(stream: JobStream) -> None:
    for i in range(3):
        await stream.submit(job(f"j{i}"))
    await stream.submit(job("v1", model="veo3"))
    entries = await stream.claim(stream.redis, "w1", {"local": 10, "veo3": 10}, 100)
    refs = [e.ref for e in entries]
    local = stream.keys.queue("local")
    assert [r.stream for r in refs] == [local] * 3 + [stream.keys.queue("veo3")]
    await stream.redis.xclaim(local, stream.keys.jobs_group, "thief", 0, [refs[1].message_id], justid=True)
    assert await stream.renew("w1", refs) == {refs[0], refs[2], refs[3]}  # one script per stream
    assert await stream.owns("w1", refs[0]) and not await stream.owns("w1", refs[1])


async def test_a_claim_takes_at_most_each_models_free_slots_and_nothing_of_the_others(stream: JobStream) -> None:
    for i in range(3):
        await stream.submit(job(f"l{i}"))
        await stream.submit(job(f"v{i}", model="veo3"))
    found = await stream.claim(stream.redis, "w1", {"local": 1, "veo3": 2}, 100)  # several models: one round trip
    assert sorted(e.job.job_id for e in found) == ["l0", "v0", "v1"]
    assert [e.job.job_id for e in await stream.claim(stream.redis, "w1", {"veo3": 5}, 100)] == ["v2"]  # one stream
    [info] = await stream.redis.xinfo_groups(stream.keys.queue("local"))
    assert (info["pending"], info["lag"]) == (1, 2)  # the other two local jobs: never delivered


async def test_a_dead_consumers_job_is_reclaimed_on_its_stream_with_its_delivery_count(stream: JobStream) -> None:
    await stream.submit(job())
    await stream.submit(job("v1", model="veo3"))
    await stream.claim(stream.redis, "dead", {"local": 10, "veo3": 10}, 100)
    _, found = await stream.reclaim(stream.keys.queue("local"), "alive", 10, 0, "0-0")
    assert [(e.stream, e.count) for e in found] == [(stream.keys.queue("local"), 2)] and found[0].job == job()
    _, found = await stream.reclaim(stream.keys.queue("veo3"), "alive", 10, 0, "0-0")
    assert [e.job.job_id for e in found] == ["v1"]


async def test_an_ack_names_its_stream(stream: JobStream) -> None:
    local, veo3 = stream.keys.queue("local"), stream.keys.queue("veo3")
    for key, model in ((local, "local"), (veo3, "veo3")):  # the same entry id on two streams
        await stream.redis.xadd(key, {DATA_FIELD: encode(job(f"on-{model}", model=model))}, id="5-1")
    entries = await stream.claim(stream.redis, "w1", {"local": 1, "veo3": 1}, 100)
    assert sorted(e.ref for e in entries) == sorted([EntryRef(local, "5-1"), EntryRef(veo3, "5-1")])
    [on_local] = [e for e in entries if e.stream == local]
    await stream.complete(on_local.ref, on_local.job, reply("on-local"))
    assert (await stream.redis.xpending(local, stream.keys.jobs_group))["pending"] == 0
    assert (await stream.redis.xpending(veo3, stream.keys.jobs_group))["pending"] == 1  # not the other's


async def test_hand_over_makes_jobs_reclaimable_at_once_without_counting_a_delivery(stream: JobStream) -> None:
    await stream.submit(job())
    await stream.submit(job("v1", model="veo3"))
    await stream.claim(stream.redis, "leaving", {"local": 10, "veo3": 10}, 100)
    streams = [stream.keys.queue("local"), stream.keys.queue("veo3"), stream.keys.legacy_jobs_stream]
    assert await stream.hand_over("leaving", streams, 60_000) == 2  # the legacy stream does not exist: none
    _, found = await stream.reclaim(stream.keys.queue("local"), "staying", 10, 60_000, "0-0")
    assert [e.count for e in found] == [1]


async def test_the_legacy_streams_undelivered_jobs_move_to_their_models_streams(stream: JobStream) -> None:
    legacy, group = stream.keys.legacy_jobs_stream, stream.keys.jobs_group
    assert await stream.migrate_legacy(["local"]) == (0, 0)  # no legacy stream: one EXISTS
    await stream.redis.xgroup_create(legacy, group, id="0", mkstream=True)
    for data in [encode(job("a")), encode(job("b")), encode(job("v", model="veo3")), b"not a job"]:
        await stream.redis.xadd(legacy, {DATA_FIELD: data})
    await stream.redis.xreadgroup(group, "old", {legacy: ">"}, count=1)  # "a": an old worker runs it
    assert await stream.migrate_legacy(["local"]) == (2, 1)  # "b", and the unreadable one to the dead letters
    [moved] = await stream.claim(stream.redis, "new", {"local": 10}, 100)
    assert moved.job == job("b") and moved.count == 1
    left = [fields[DATA_FIELD] for _, fields in await stream.redis.xrange(legacy)]
    assert left == [encode(job("a")), encode(job("v", model="veo3"))]  # pending, and another worker's model
    [(_, dead)] = await stream.redis.xrange(stream.keys.dead_letter_stream)
    letter = decode_dead_letter(dead[DATA_FIELD])
    assert (letter.reason, letter.data, letter.stream) == ("unparseable job message", "not a job", legacy)
    assert await stream.migrate_legacy(["veo3"]) == (1, 1)


async def test_a_dead_letter_keeps_the_reason_and_replies_to_the_waiting_process(stream: JobStream) -> None:
    inbox = stream.keys.inbox("p1")
    await stream.open_inbox(inbox)
    await stream.redis.xadd(stream.keys.queue("local"), {DATA_FIELD: encode(job(inbox=inbox))})
    [entry] = await stream.claim(stream.redis, "w1", {"local": 10}, 100)
    await stream.dead_letter(entry, "unknown model 'x'", reply())
    [(_, fields)] = await stream.redis.xrange(stream.keys.dead_letter_stream)
    dead = msgspec.json.decode(fields[DATA_FIELD])
    assert dead["reason"] == "unknown model 'x'" and dead["job_id"] == "j1"
    assert dead["stream"] == stream.keys.queue("local")
    assert (await stream.read_inbox(stream.redis, inbox, "0-0", 100))[1] == [reply()]
    assert not await stream.redis.xpending_range(stream.keys.queue("local"), stream.keys.jobs_group, "-", "+", 10)


async def test_an_inbox_expires_after_its_process_and_is_recreated_if_lost(stream: JobStream) -> None:
    inbox = stream.keys.inbox("p1")
    await stream.open_inbox(inbox)
    assert INBOX_TTL_SECONDS - 5 < await stream.redis.ttl(inbox) <= INBOX_TTL_SECONDS
    await stream.redis.delete(inbox)  # Redis restarted without it
    await stream.keep_inbox(inbox)
    assert await stream.redis.exists(inbox)


async def test_idempotent_submissions_bind_once(stream: JobStream) -> None:
    from service.jobs.stream import IdempotentRequest

    first = await stream.submit(job("j1"), IdempotentRequest("k", "h1"))
    second = await stream.submit(job("j2"), IdempotentRequest("k", "h2"))
    assert first.earlier is None and second.earlier is not None
    assert (second.job_id, second.earlier.body_hash) == ("j1", "h1")
    assert decode_reply(encode(reply())) == reply()


async def test_jobs_finishing_together_share_one_inbox_entry_one_event_entry_and_one_ack() -> None:
    with EmbeddedRedis() as url:
        client = aioredis.Redis.from_url(url)
        stream = JobStream(client, Keys("t"), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
        await stream.ensure_groups(["local"])
        inbox = stream.keys.inbox("p1")
        await stream.open_inbox(inbox)
        for i in range(10):
            await stream.submit(job(f"j{i}", inbox=inbox))
        entries = await stream.claim(client, "w1", {"local": 10}, 100)
        before = await calls(client)
        await asyncio.gather(*(stream.complete(e.ref, e.job, reply(e.job.job_id)) for e in entries))
        used = await calls(client) - before
        _, notified = await stream.read_inbox(client, inbox, "0-0", 100)
        _, events = await stream.read_events(client, "0-0", 100)
        pending = await client.xpending(stream.keys.queue("local"), stream.keys.jobs_group)
        await client.aclose()
    # each job's reply key (SET NX), then one inbox entry, one events entry and one XACK for all ten
    assert used == Counter({"set": 10, "xadd": 2, "xack": 1})
    assert sorted(r.job_id for r in notified) == sorted(f"j{i}" for i in range(10))
    assert [e.status for e in events] == ["done"] * 10 and len({e.id for e in events}) == 10
    assert pending["pending"] == 0


async def test_a_published_event_is_not_waited_for_and_comes_before_the_jobs_end(stream: JobStream) -> None:
    await stream.submit(job("j1"))
    [entry] = await stream.claim(stream.redis, "w1", {"local": 10}, 100)
    publishing = stream.publish(JobEvent(job_id="j1", status="running"))
    with pytest.raises(StopIteration):  # done without suspending: the event waits in the outbox
        publishing.send(None)
    await stream.complete(entry.ref, entry.job, reply())
    _, events = await stream.read_events(stream.redis, "0-0", 100)
    assert [(e.job_id, e.status) for e in events] == [("j1", "running"), ("j1", "done")]
