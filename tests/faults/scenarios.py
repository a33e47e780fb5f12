"""The fault scenarios. Each builds a fresh cluster (API, workers, redis-server, PostgreSQL),
injects one kind of failure into real processes, lets clients resolve their jobs, and audits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from service.jobs.stream import JobStream
from tests.faults.harness import (
    COST,
    Audit,
    Client,
    Cluster,
    Databases,
    FakeFal,
    ScenarioFailed,
    audit,
    cluster,
    jobs_summary,
    outcome_summary,
    pending_entries,
    until,
)


@dataclass
class Result:
    scenario: str
    jobs: str = "-"
    outcome: str = "-"
    events: str = "-"
    ledger: str = "-"
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    logs: str | None = None


class Env:
    """What scenarios share in one run: the template database and the fake fal (started lazily)."""

    def __init__(self) -> None:
        self.dbs = Databases()
        self._fal: FakeFal | None = None
        self._fal_dir: Path | None = None

    @property
    def fal(self) -> FakeFal:
        if self._fal is None:
            from tests.fakes.fal_queue import start_fal_server

            self._fal_dir = Path(tempfile.mkdtemp(prefix="video-gen-faults-fal-"))
            base_url, ca_path, stop = start_fal_server(self._fal_dir)
            self._fal = FakeFal(base_url, ca_path, stop)
        return self._fal

    def close(self) -> None:
        if self._fal is not None:
            self._fal.stop()
        if self._fal_dir is not None:
            shutil.rmtree(self._fal_dir, ignore_errors=True)  # its certificates


async def _rows(c: Cluster, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(c.db_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _pending_of(c: Cluster, consumer: str) -> list[dict[str, Any]]:
    return [r for r in await pending_entries(c) if r["consumer"].decode() == consumer]


async def _pending_all(c: Cluster) -> list[dict[str, Any]]:
    return await pending_entries(c)


def _finish(result: Result, client: Client, report: Audit, c: Cluster, extra: list[str]) -> Result:
    result.jobs, result.outcome = jobs_summary(client), outcome_summary(client)
    result.problems = extra + report.problems
    result.ok = not result.problems
    result.ledger = report.summary if not extra else report.summary.replace("ok:", "FAIL:", 1)
    if not result.ok:
        c.keep = True
        result.logs = str(c.dir)
    return result


async def _audit(c: Cluster, client: Client, **kwargs: Any) -> Audit:
    for attempt in (1, 2, 3):  # the runner's own connections may have been terminated too
        try:
            return await audit(c, client, **kwargs)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            if attempt == 3:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


# -- 1. a worker killed with SIGKILL at each stage --------------------------------------------


def kill_at(point: str, model: str = "local") -> Callable[[Env], Awaitable[Result]]:
    async def scenario(env: Env) -> Result:
        result = Result(f"SIGKILL worker {point}" + (" (veo3)" if model == "veo3" else ""))
        fal = env.fal if model == "veo3" else None
        async with cluster(f"kill-{point}", env.dbs, fal=fal) as c:
            api = asyncio.create_task(c.start_api())
            # With veo3 the victim runs one job at a time: it dies just after saving fal's request id,
            # and no second job of its own is caught between fal's answer and that save (the one
            # window no worker can close: fal has no idempotent submit).
            # (WORKER_CONCURRENCY no longer bounds a model that declares its own slots: veo3's are set too.)
            one = {"WORKER_CONCURRENCY": "1", "MODEL_CONCURRENCY": "veo3=1"} if model == "veo3" else {}
            victim = await c.start_worker(crash_at=point, **one)
            await api
            client = Client(c)
            try:
                for user in ("u1", "u2"):
                    await client.setup_user(user, 4 * COST)
                first = [client.new_job("u1", model=model), client.new_job("u2", model=model)]
                await asyncio.gather(*(client.submit(j) for j in first))  # only the victim is consuming
                code = await c.wait_exit(victim, f"the worker to kill itself at {point}")
                held = await _pending_of(c, victim.consumer)
                extra = [] if code == -signal.SIGKILL else [f"the victim exited {code}, not by SIGKILL"]
                await c.start_worker()
                more = [client.new_job(u, model=model) for u in ("u1", "u2", "u1", "u2")]
                await asyncio.gather(
                    client.submit(more[0], wait=True),
                    client.submit(more[1], wait=True),
                    client.submit(more[2]),
                    client.submit(more[3]),
                )
                await client.resolve_all()  # every client retries with its key until it has its outcome
                if any(j.status != 200 for j in client.jobs):
                    extra.append("a job did not succeed")
                paid = {j.body["prompt"]: 1 for j in client.jobs} if model == "veo3" else None
                report = await _audit(c, client, paid_once=paid)
                ids = [j.job_id for j in first]
                attempts = [
                    r["attempts"]
                    for r in await _rows(
                        c, "SELECT attempts FROM generations WHERE id = ANY($1::text[]) ORDER BY id", ids
                    )
                ]
                result.events = (
                    f"victim exit {code}, holding {len(held)} job(s); resumed by another worker "
                    f"(their attempts: {attempts})"
                    + ("; fal paid once per job" if paid and not report.problems else "")
                )
                return _finish(result, client, report, c, extra)
            finally:
                await client.close()

    return scenario


# -- 2. a job that kills every worker that runs it: bounded retries, and a poison message -----


async def poison(env: Env) -> Result:
    result = Result("crash loop + poison message")
    async with cluster("poison", env.dbs) as c:
        await c.start_api()
        client = Client(c)
        try:
            await client.setup_user("u1", 3 * COST)
            redis = aioredis.Redis.from_url(c.redis.url)
            try:
                await redis.xadd(c.keys.queue("local"), {b"data": b'{"this is": "not a job'})
            finally:
                await redis.aclose()
            doomed = await client.submit(client.new_job("u1"))
            kills, extra = 0, []
            while True:  # a process manager restarts each dead worker; each one dies on the job
                worker = c.spawn("worker", VIDEO_GEN_CRASH_AT="during_generation")

                async def settled(w: Any = worker) -> bool:
                    view = await client.http.get(f"/video-gen/jobs/{doomed.job_id}", headers=client.auth("u1"))
                    return w.returncode is not None or view.json().get("status") in ("succeeded", "failed")

                await until(settled, "the worker to die or the job to end")
                if worker.returncode is None:
                    break
                kills += 1
                if worker.returncode != -signal.SIGKILL or kills > 5:
                    raise ScenarioFailed(f"worker exit {worker.returncode} after {kills} kills")
            worker.signal(signal.SIGTERM)  # this one would die on the next job too
            await c.wait_exit(worker, "the last crash-configured worker to stop")
            await c.start_worker()
            after = await client.submit(client.new_job("u1"))  # the group is not blocked
            await client.resolve_all()
            expected = "Image-to-video generation failed: the job was interrupted 3 times and was not retried again"
            if (doomed.status, (doomed.outcome or {}).get("message")) != (500, expected):
                extra.append(f"the crashing job ended {doomed.status} {doomed.outcome}")
            if after.status != 200:
                extra.append(f"the next job ended {after.status}")
            if kills != 3:
                extra.append(f"{kills} workers died, expected JOB_MAX_ATTEMPTS=3")
            report = await _audit(c, client, dead_letters=1)
            result.events = (
                f"{kills} workers SIGKILLed by one job; delivery 4 refunded it (500); "
                f"unparseable message dead-lettered; next job ok"
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


# -- 3. SIGTERM: a worker hands over what it cannot finish, another finishes within grace ------


async def sigterm_worker(env: Env) -> Result:
    result = Result("SIGTERM worker (veo3)")
    async with cluster("sigterm-worker", env.dbs, fal=env.fal, FAL_POLL_SECONDS="0.5") as c:
        api = asyncio.create_task(c.start_api())
        leaving = await c.start_worker(SHUTDOWN_GRACE_SECONDS="0.3")
        await api
        client = Client(c)
        try:
            await client.setup_user("u1", 4 * COST)
            jobs = [client.new_job("u1", model="veo3") for _ in range(2)]
            await asyncio.gather(*(client.submit(j) for j in jobs))
            ids = [j.job_id for j in jobs]

            async def submitted() -> bool:
                rows = await _rows(c, "SELECT provider_request_id FROM generations WHERE id = ANY($1::text[])", ids)
                return len(rows) == 2 and all(r["provider_request_id"] for r in rows)

            await until(submitted, "both jobs to be running on fal")
            leaving.signal(signal.SIGTERM)
            code1 = await c.wait_exit(leaving, "the worker to stop after its grace")
            handed = [p for p in await _pending_of(c, leaving.consumer) if p["times_delivered"] == 0]
            staying = await c.start_worker(SHUTDOWN_GRACE_SECONDS="60")
            await asyncio.gather(*(client.resolve(j) for j in jobs))
            last = await client.submit(client.new_job("u1", model="veo3"))

            async def generating() -> bool:
                rows = await _rows(c, "SELECT provider_request_id FROM generations WHERE id = $1", last.job_id)
                return bool(rows and rows[0]["provider_request_id"])

            await until(generating, "the last job to be running on fal")
            staying.signal(signal.SIGTERM)
            code2 = await c.wait_exit(staying, "the worker to finish its job and stop")
            await client.resolve_all()
            extra = [f"a worker exited {code}" for code in (code1, code2) if code != 0]
            attempts = [r["attempts"] for r in await _rows(c, "SELECT attempts FROM generations")]
            if any(a != 1 for a in attempts):
                extra.append(f"attempts {attempts}: a graceful stop was counted as an attempt")
            if any(j.status != 200 for j in client.jobs):
                extra.append("a job did not succeed")
            report = await _audit(c, client, paid_once={j.body["prompt"]: 1 for j in client.jobs})
            result.events = (
                f"grace 0.3 s: exit {code1}, handed over {len(handed)} running jobs, resumed on fal "
                f"by another worker; grace 60 s: finished its job, exit {code2}"
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


# -- 4. SIGTERM to the API while clients wait ---------------------------------------------------


async def sigterm_api(env: Env) -> Result:
    result = Result("SIGTERM API with waiting clients")
    async with cluster("sigterm-api", env.dbs) as c:
        api_start = asyncio.create_task(c.start_api())
        worker = await c.start_worker()
        api = await api_start
        client = Client(c)
        try:
            await client.setup_user("u1", 4 * COST)
            worker.signal(signal.SIGSTOP)  # the jobs wait; so do their clients
            waiting = [client.new_job("u1") for _ in range(3)]
            tasks = [asyncio.create_task(client.submit(j, wait=True)) for j in waiting]
            redis = aioredis.Redis.from_url(c.redis.url)
            try:
                await until(lambda: _queued(redis, c, 3), "three queued jobs")
            finally:
                await redis.aclose()
            api.signal(signal.SIGTERM)
            await asyncio.gather(*tasks)
            code = await c.wait_exit(api, "the API to exit")
            statuses = sorted(j.first_status for j in waiting)
            refused = await client.submit(client.new_job("u1"))  # nobody listens any more
            worker.signal(signal.SIGCONT)
            c.api = c.spawn("api")
            await c.api_ready()
            await client.resolve_all()
            extra = []
            if statuses != [202, 202, 202]:
                extra.append(f"waiting clients got {statuses}, expected 202s with their job ids")
            if code not in (0, -signal.SIGTERM):  # uvicorn re-raises the SIGTERM it handled, by design
                extra.append(f"the API exited {code}")
            if refused.accepted:
                extra.append("a request was accepted by a stopped API")
            report = await _audit(c, client)
            result.events = (
                f"waiting clients answered {statuses} with their job ids; API exit {code}; "
                "restarted API and workers finished the jobs"
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


async def _queued(redis: aioredis.Redis, c: Cluster, n: int) -> bool:
    with contextlib.suppress(Exception):  # nothing is acknowledged (so trimmed) while the worker is stopped
        return await JobStream(redis, c.keys, reply_ttl=1, meta_ttl=1, idempotency_ttl=1).backlog() >= n
    return False


# -- 5. Redis killed and restarted from its append-only file ------------------------------------


async def redis_restart(env: Env) -> Result:
    result = Result("Redis SIGKILL + restart (AOF)")
    async with cluster("redis-restart", env.dbs) as c:
        await asyncio.gather(c.start_api(), c.start_worker(), c.start_worker())
        client = Client(c)
        try:
            for user in ("u1", "u2"):
                await client.setup_user(user, 6 * COST)
            jobs = [client.new_job(u) for u in ("u1", "u2") * 4]
            await asyncio.gather(*(client.submit(j) for j in jobs))
            await until(lambda: _rows(c, "SELECT 1 FROM generations LIMIT 1"), "a job to start")
            c.redis.kill()
            down = [client.new_job(u) for u in ("u1", "u2")]
            await asyncio.gather(*(client.submit(j) for j in down))
            await asyncio.sleep(1.5)
            await c.redis.start()
            await client.resolve_all()
            extra = [f"a request was accepted while Redis was down ({j.first_status})" for j in down if j.accepted]
            if any(j.status != 200 for j in client.jobs if j.accepted):
                extra.append("a job did not succeed")
            report = await _audit(c, client)
            result.events = (
                f"redis-server SIGKILLed with jobs queued and running, restarted after 1.5 s; "
                f"requests meanwhile: {sorted(j.first_status for j in down)}"
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


# -- 6. PostgreSQL connections terminated again and again ----------------------------------------


async def postgres_connection_loss(env: Env) -> Result:
    result = Result("PostgreSQL connections killed")
    async with cluster("pg-loss", env.dbs) as c:
        await asyncio.gather(c.start_api(), c.start_worker(), c.start_worker())
        client = Client(c)
        try:
            for user in ("u1", "u2"):
                await client.setup_user(user, 5 * COST)
            killed = 0
            stop = asyncio.Event()

            async def killer() -> None:
                nonlocal killed
                conn = await asyncpg.connect(c.db_url)
                try:
                    while not stop.is_set():
                        rows = await conn.fetch(
                            "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity "
                            "WHERE datname = $1 AND pid <> pg_backend_pid()",
                            c.database,
                        )
                        killed += sum(1 for r in rows if r["t"])
                        await asyncio.sleep(0.25)
                finally:
                    await conn.close()

            task = asyncio.create_task(killer())
            jobs = [client.new_job(u) for u in ("u1", "u2") * 4]
            for job in jobs:  # spread over the killing
                await client.submit(job)
                await asyncio.sleep(0.4)
            await asyncio.sleep(2.0)
            stop.set()
            await task
            await client.resolve_all()
            extra = []
            if any(j.status != 200 for j in client.jobs if j.accepted):
                extra.append("an accepted job did not succeed")
            if not any(j.accepted for j in client.jobs):
                extra.append("no job was accepted")
            report = await _audit(c, client)
            result.events = f"{killed} backend connections terminated over {len(jobs) * 0.4 + 2:.1f} s while jobs ran"
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


# -- 7. the provider fails in every way fal can --------------------------------------------------


async def provider_errors(env: Env) -> Result:
    result = Result("provider errors (veo3 on fake fal)")
    async with cluster("provider", env.dbs, fal=env.fal) as c:
        await asyncio.gather(c.start_api(), c.start_worker(), c.start_worker())
        client = Client(c)
        try:
            await client.setup_user("u1", 6 * COST)
            tag = uuid.uuid4().hex[:6]
            # token -> (expected status, submissions fal sees: refused ones count, paid ones are 1)
            plan = {
                "": (200, 1),
                "[fail:1]": (200, 2),
                "[throttle:1]": (200, 2),
                "[statusfail:2]": (200, 1),
                "[error]": (500, 1),
                "[policy]": (400, 1),
            }
            jobs = {
                token: client.new_job("u1", model="veo3", prompt=f"{token} provider {tag} sea at dawn")
                for token in plan
            }
            await asyncio.gather(*(client.submit(j) for j in jobs.values()))
            await client.resolve_all()
            extra = [
                f"{token or 'plain'}: {j.status}, expected {plan[token][0]}"
                for token, j in jobs.items()
                if j.status != plan[token][0]
            ]
            report = await _audit(c, client, paid_once={j.body["prompt"]: plan[t][1] for t, j in jobs.items()})
            result.events = (
                "fal 500/429 on submit and 503 on polls retried; a completed-with-error and a "
                "content-policy refusal refunded"
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


# -- 8. cancel: before any worker, while the worker is dead, racing completion -------------------


async def cancel(env: Env) -> Result:
    result = Result("cancel: queued, worker dead, racing")
    async with cluster("cancel", env.dbs, fal=env.fal) as c:
        await c.start_api()
        client = Client(c)
        try:
            await client.setup_user("u1", 10 * COST)
            extra: list[str] = []

            async def cancel_job(job: Any) -> httpx.Response:
                return await client.http.post(f"/video-gen/jobs/{job.job_id}/cancel", headers=client.auth(job.user))

            queued = await client.submit(client.new_job("u1"))  # no worker yet: it waits in the queue
            first = await cancel_job(queued)
            victim = await c.start_worker(
                crash_at="during_generation", WORKER_CONCURRENCY="1", MODEL_CONCURRENCY="veo3=1"
            )
            dead = client.new_job("u1", model="veo3", prompt=f"cancel {uuid.uuid4().hex[:6]} [never] sea")
            waiting = asyncio.create_task(client.submit(dead, wait=True))
            code = await c.wait_exit(victim, "the worker to die with fal's request running")
            [row] = await _rows(c, "SELECT id, provider_request_id FROM generations WHERE status = 'running'")
            dead.job_id = row["id"]
            second = await cancel_job(dead)  # its worker is dead
            await waiting  # the waiting client is answered at once
            if (dead.status, (dead.outcome or {}).get("statusCode")) != (409, 409):
                extra.append(f"the waiting client got {dead.first_status} {dead.outcome}")
            await asyncio.gather(c.start_worker(), c.start_worker())  # reclaims the dead one's job
            racing = [client.new_job("u1") for _ in range(6)]
            await asyncio.gather(*(client.submit(j) for j in racing))
            answers = []
            for i, job in enumerate(racing):  # cancels spread over the jobs' lives
                await asyncio.sleep(0.15 * i)
                answers.append(await cancel_job(job))
            await client.resolve_all()
            await until(lambda: row["provider_request_id"] in c.fal.cancelled(), "fal to be asked to cancel")

            async def acknowledged() -> bool:
                return not await _pending_all(c)

            await until(acknowledged, "every job to be acknowledged")
            for name, job, r in (("queued", queued, first), ("worker dead", dead, second)):
                if r.status_code != 200 or r.json()["status"] != "cancelled" or job.status != 409:
                    extra.append(f"{name}: cancel {r.status_code}, job ended {job.status}")
            agree = {(200, 409), (409, 200)}  # cancelled and answered 409, or finished first and cancel refused
            extra += [
                f"racing job {j.job_id}: cancel {r.status_code} but the job ended {j.status}"
                for j, r in zip(racing, answers)
                if (r.status_code, j.status) not in agree
            ]
            if code != -signal.SIGKILL:
                extra.append(f"the victim exited {code}, not by SIGKILL")
            charged = await _rows(c, "SELECT credits_charged FROM generations WHERE id = $1", queued.job_id)
            if [r["credits_charged"] for r in charged] != [0]:
                extra.append(f"the queued job was charged: {charged}")
            report = await _audit(c, client, paid_once={dead.body["prompt"]: 1})
            won = sum(r.status_code == 200 for r in answers)
            result.events = (
                f"queued job cancelled before any worker (never charged); worker SIGKILLed mid-generation, job "
                f"cancelled while it was dead: waiting client got 409 at once, the next worker answered from the "
                f"record and cancelled the fal request; racing: {won} of {len(racing)} cancels won, the rest 409"
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


# -- 7. a worker killed around its webhook: the event still arrives, as one logical delivery ----


def webhook_kill(point: str) -> Callable[[Env], Awaitable[Result]]:
    """SIGKILL the worker at ``point`` (``before_webhook``: the outcome is recorded, the event not
    queued; ``before_ack``: queued, the job not acknowledged); another worker takes the job over.
    The receiver verifies with ``standardwebhooks``; every request it got must carry one
    ``webhook-id`` and one body, and Redis must hold exactly one delivery, delivered."""

    async def scenario(env: Env) -> Result:
        from tests.fakes.webhook_receiver import Receiver
        from tests.webhooks.conftest import new_secret

        result = Result(f"SIGKILL worker {point}, webhook subscribed")
        secret = new_secret()
        receiver = Receiver(secret)
        url = await receiver.start() + "/hooks"
        hooks = {"WEBHOOK_SECRET": secret, "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}
        try:
            async with cluster(f"webhook-{point}", env.dbs, WEBHOOK_POLL_SECONDS="0.1", **hooks) as c:
                api = asyncio.create_task(c.start_api())
                victim = await c.start_worker(crash_at=point)
                await api
                client = Client(c)
                try:
                    await client.setup_user("u1", 2 * COST)
                    job = client.new_job("u1")
                    job.body["webhookUrl"] = url
                    await client.submit(job)
                    code = await c.wait_exit(victim, f"the worker to kill itself at {point}")
                    extra = [] if code == -signal.SIGKILL else [f"the victim exited {code}, not by SIGKILL"]
                    status = await _rows(c, "SELECT status FROM generations WHERE id = $1", job.job_id)
                    if [r["status"] for r in status] != ["succeeded"] or receiver.received:
                        extra.append(f"before the takeover: status {status}, {len(receiver.received)} webhook(s)")
                    await c.start_worker()
                    await client.resolve_all()
                    await receiver.wait_for(1, timeout=60)
                    extra += await _one_delivery(c, receiver, f"msg_{job.job_id}_succeeded")
                    report = await _audit(c, client)
                    result.events = (
                        f"victim exit {code}; webhook: {len(receiver.received)} request(s), "
                        f"ids {sorted({r.headers['webhook-id'] for r in receiver.received})}"
                    )
                    return _finish(result, client, report, c, extra)
                finally:
                    await client.close()
        finally:
            await receiver.stop()

    return scenario


async def _one_delivery(c: Cluster, receiver: Any, expected_id: str) -> list[str]:
    """Problems unless every request carried ``expected_id`` and one verified body, and Redis holds
    that one delivery, delivered, with no attempt left due."""
    problems = []
    if {r.headers["webhook-id"] for r in receiver.received} != {expected_id}:
        problems.append(f"webhook ids {[r.headers['webhook-id'] for r in receiver.received]}, not {expected_id}")
    if len({r.body for r in receiver.received}) != 1 or any(r.payload is None for r in receiver.received):
        problems.append("the webhook requests differ or do not verify")
    redis = aioredis.Redis.from_url(c.redis.url)
    try:
        stored = [k async for k in redis.scan_iter(match=c.keys.webhook("*"))]
        async with asyncio.timeout(30):
            while (raw := await redis.get(c.keys.webhook(expected_id))) and b'"status":"pending"' in raw:
                await asyncio.sleep(0.1)
        due = await redis.zcard(c.keys.webhooks_due)
    finally:
        await redis.aclose()
    if len(stored) != 1 or not raw or b'"status":"delivered"' not in raw or due:
        problems.append(f"Redis holds {len(stored)} deliveries ({raw!r}), {due} due")
    return problems


# -- 1b. a worker killed with 1,000 provider jobs in flight -----------------------------------

INFLIGHT = int(os.environ.get("FAULTS_INFLIGHT", "1000"))  # jobs running on fal when the worker dies
# Each one's time on fal: longer than submitting them all takes, so that all are running at the kill.
INFLIGHT_MODEL_SECONDS = float(os.environ.get("FAULTS_INFLIGHT_SECONDS", "150"))


async def kill_inflight(env: Env) -> Result:
    """SIGKILL a worker once every one of ``INFLIGHT`` veo3 jobs is running on the fake fal; another
    worker resumes them all from their recorded request ids: none lost, none submitted twice."""
    n = INFLIGHT
    result = Result(f"SIGKILL worker, {n} veo3 jobs in flight")
    slots = {"MODEL_CONCURRENCY": f"veo3={n}"}
    async with cluster("kill-inflight", env.dbs, fal=env.fal, FAL_POLL_SECONDS="1", JOB_LEASE_SECONDS="10") as c:
        api = asyncio.create_task(c.start_api())
        victim = await c.start_worker(**slots)
        await api
        client = Client(c)
        try:
            users = [f"u{i}" for i in range(10)]
            for user in users:
                await client.setup_user(user, -(-n // len(users)) * COST)
            tag = f"[time:{INFLIGHT_MODEL_SECONDS:g}]"
            jobs = [
                client.new_job(users[i % len(users)], model="veo3", prompt=f"in flight {i} {tag}") for i in range(n)
            ]
            gate = asyncio.Semaphore(50)

            async def submit(job: Any) -> None:
                async with gate:
                    await client.submit(job)

            await asyncio.gather(*(submit(j) for j in jobs))
            submitted = "SELECT count(*) AS n FROM generations WHERE provider_request_id IS NOT NULL"
            running = f"{submitted} AND status = 'running'"

            async def all_on_fal() -> bool:
                return (await _rows(c, submitted))[0]["n"] >= n

            await until(all_on_fal, f"all {n} jobs to be submitted to fal", timeout=600, every=1.0)
            victim.signal(signal.SIGKILL)
            code = await c.wait_exit(victim, "the worker to die")
            held = (await _rows(c, running))[0]["n"]
            if held < n:
                extra_note = [f"only {held} of {n} were still running at the kill: raise FAULTS_INFLIGHT_SECONDS"]
            else:
                extra_note = []
            await c.start_worker(**slots)
            done = "SELECT count(*) AS n FROM generations WHERE status IN ('succeeded', 'failed')"

            async def all_done() -> bool:
                return (await _rows(c, done))[0]["n"] >= n

            await until(all_done, f"all {n} jobs to finish", timeout=INFLIGHT_MODEL_SECONDS * 3 + 600, every=1.0)
            await client.resolve_all()
            extra = [] if code == -signal.SIGKILL else [f"the victim exited {code}, not by SIGKILL"]
            extra += extra_note
            if any(j.status != 200 for j in client.jobs):
                extra.append(f"{sum(j.status != 200 for j in client.jobs)} job(s) did not succeed")
            attempts = Counter(r["attempts"] for r in await _rows(c, "SELECT attempts FROM generations"))
            report = await _audit(c, client, paid_once={j.body["prompt"]: 1 for j in client.jobs})
            result.events = (
                f"victim exit {code} with {held} jobs running on fal; all resumed by another worker from their "
                f"request ids (attempts: {dict(attempts)})" + ("; fal paid once per job" if not report.problems else "")
            )
            return _finish(result, client, report, c, extra)
        finally:
            await client.close()


SCENARIOS: dict[str, Callable[[Env], Awaitable[Result]]] = {
    "kill-after-debit": kill_at("after_debit"),
    "kill-during-generation": kill_at("during_generation", model="veo3"),
    "kill-after-upload": kill_at("after_upload"),
    "kill-before-ack": kill_at("before_ack"),
    "kill-inflight": kill_inflight,
    "crash-loop": poison,
    "sigterm-worker": sigterm_worker,
    "sigterm-api": sigterm_api,
    "redis-restart": redis_restart,
    "postgres-loss": postgres_connection_loss,
    "provider-errors": provider_errors,
    "cancel": cancel,
    "webhook-kill-before-webhook": webhook_kill("before_webhook"),
    "webhook-kill-before-ack": webhook_kill("before_ack"),
}

FAST = ("kill-after-debit", "redis-restart")


async def run(names: list[str], *, progress: Callable[[Result], None] | None = None) -> list[Result]:
    env = Env()
    await env.dbs.prepare()
    results = []
    try:
        for name in names:
            started = time.monotonic()
            try:
                result = await SCENARIOS[name](env)
            except Exception as exc:  # a scenario that cannot finish is a failed scenario
                result = Result(name, problems=[f"{type(exc).__name__}: {exc}"])
            result.seconds = time.monotonic() - started
            results.append(result)
            if progress:
                progress(result)
    finally:
        env.close()
        await env.dbs.drop_all()
    return results
