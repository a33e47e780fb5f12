"""Outages, shutdown and bounds: Redis or PostgreSQL unreachable (a proxy cut between them and
the stack), the API draining on SIGTERM, a full queue, and what Redis keeps afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest

from service.core.keys import Keys
from service.core.settings import Settings
from service.jobs.shutdown import install_shutdown_hook
from service.jobs.stream import CANCELS_MAXLEN, EVENTS_MAXLEN, INBOX_TTL_SECONDS, JobStream
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from tests.factories import grant, image_request, seed_image
from tests.faults.proxy import TcpProxy
from tests.jobs.conftest import JobsApi, open_gate, running
from tests.workers.models import ScriptedModel

QUEUE_DOWN = {
    "statusCode": 503,
    "error": "Service Unavailable",
    "message": "Service temporarily unavailable: the job queue is unreachable",
}
DATABASE_DOWN = {
    "statusCode": 503,
    "error": "Service Unavailable",
    "message": "Service temporarily unavailable: the database is unreachable",
}


async def started(count: int = 1) -> None:
    while ScriptedModel.generations.total() < count:
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_while_redis_is_down_requests_get_503_and_everything_reconnects(
    stack_settings: Callable[..., Settings],
) -> None:
    proxy = TcpProxy("127.0.0.1", 6379).start()
    try:
        # the rate limiter (on, as in production) keeps its counters in Redis too: still a 503
        settings = stack_settings(redis_url=f"redis://127.0.0.1:{proxy.port}/0", rate_limit_per_minute=1000)
        async with running(settings) as api:
            await seed_image(api.settings)
            await grant("u1", 2000)
            assert (await api.post(image_request())).status_code == 200
            proxy.cut()
            down = await api.post(image_request())
            assert down.status_code == 503 and down.json() == QUEUE_DOWN
            assert (await api.post(image_request(), headers={"Idempotency-Key": "k"})).json() == QUEUE_DOWN
            job = await api.client.get("/video-gen/jobs/0123456789abcdef", headers=api.auth("u1"))
            assert job.status_code == 503 and job.json() == QUEUE_DOWN
            assert await ledger.balance_of("u1") == 1250
            proxy.restore()
            back = await api.post(image_request())  # API, reply reader and worker reconnect by themselves
            assert back.status_code == 200, back.text
            assert back.json()["credits"] == {"used": 750, "balance": 500.0}
    finally:
        proxy.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_while_postgres_is_down_requests_get_503_and_a_running_job_finishes_after(
    stack_settings: Callable[..., Settings], database_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    try:
        settings = stack_settings(database_url=database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        async with running(settings) as api:
            await seed_image(api.settings)
            await grant("u1", 2000)
            inflight = await api.post(image_request(options={"gate": "db"}), headers={"Prefer": "respond-async"})
            await started()  # charged and generating
            proxy.cut()
            down = await api.post(image_request())
            assert down.status_code == 503 and down.json() == DATABASE_DOWN
            open_gate("db")  # the worker finishes generating while the database is away
            await asyncio.sleep(0.5)
            proxy.restore()
            job = await api.until_terminal(inflight.json()["jobId"])
            assert job["status"] == "succeeded" and job["attempts"] == 1
            assert await ledger.balance_of("u1") == 1250
            assert await LedgerEntry.count().where(LedgerEntry.kind == "debit") == 1
    finally:
        proxy.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_full_queue_refuses_with_503(stack_settings: Callable[..., Settings]) -> None:
    async with running(stack_settings(jobs_stream_maxlen=1), workers=0) as api:
        await seed_image(api.settings)
        assert (await api.post(image_request(), headers={"Prefer": "respond-async"})).status_code == 202
        full = await api.post(image_request(), headers={"Prefer": "respond-async"})
        assert full.status_code == 503
        assert full.json()["message"] == "Service temporarily unavailable: too many jobs are waiting, try again later"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_shutdown_answers_waiting_requests_with_their_job_and_refuses_new_ones(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 1000)
    waiting = asyncio.create_task(jobs_api.post(image_request(options={"gate": "bye"})))
    await started()
    jobs_api.app_state.inbox.release_all()
    answered = await waiting
    assert answered.status_code == 202
    refused = await jobs_api.post(image_request())
    assert refused.status_code == 503
    assert refused.json()["message"] == "Service temporarily unavailable: this server is shutting down"
    open_gate("bye")
    assert (await jobs_api.until_terminal(answered.json()["jobId"]))["status"] == "succeeded"


class Draining:
    def __init__(self) -> None:
        self.calls = 0

    def release_all(self) -> None:
        self.calls += 1


async def test_the_shutdown_hook_chains_onto_the_servers_signal_handler() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        queue = Draining()
        uninstall = install_shutdown_hook(queue)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if queue.calls:
                break
            await asyncio.sleep(0.01)
        assert queue.calls == 1 and seen == [signal.SIGTERM]
        uninstall()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert queue.calls == 1 and seen == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_nothing_in_redis_outlives_its_purpose(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 1500)
    assert (await jobs_api.post(image_request(model="failing"))).status_code == 500
    assert (await jobs_api.post(image_request())).status_code == 200
    assert (await jobs_api.post(image_request(), headers={"Idempotency-Key": "b1"})).status_code == 200
    assert (await jobs_api.post(image_request())).status_code == 400  # insufficient credits
    redis, s = jobs_api.app_state.redis, jobs_api.settings
    keys = Keys(s.redis_key_prefix)
    stream = JobStream(redis, keys, reply_ttl=1, meta_ttl=1, idempotency_ttl=1)
    streams = await stream.job_streams()  # every model's, and the legacy one (none here)
    for name in streams[:-1]:
        assert (await redis.xpending(name, keys.jobs_group))["pending"] == 0
    assert await stream.prune(streams, 3_600_000) == (4, 0)
    assert [await redis.xlen(name) for name in streams] == [0] * len(streams)  # acknowledged jobs are trimmed
    limits = {
        "reply": s.reply_ttl_seconds,
        "job": s.job_meta_ttl_seconds,
        "idem": s.idempotency_ttl_seconds,
        "inbox": INBOX_TTL_SECONDS,
    }
    seen = set()
    capped = {keys.events_stream: EVENTS_MAXLEN, keys.cancels_stream: CANCELS_MAXLEN}  # trimmed as they grow
    async for raw in redis.scan_iter(match=keys.pattern()):
        key = raw.decode()
        if key in streams or key == keys.queues:  # the jobs streams, and the set of their models
            continue
        if key in capped:
            assert await redis.xlen(key) <= capped[key] and await redis.ttl(key) == -1
            continue
        kind = key.removeprefix(f"{keys.prefix}:").split(":")[0]
        ttl = await redis.ttl(key)
        assert kind in limits, key
        assert 0 < ttl <= limits[kind], (key, ttl)
        seen.add(kind)
    assert seen == {"reply", "job", "idem", "inbox"}
