"""Traffic over every API of a topology, as clients behind a load balancer send it, and the audit.

Each job is one request body with one ``Idempotency-Key``. Its first request goes to the APIs in
turn; a request that finds an API stopping (connection refused, 503) is sent again to the next
one, as a load balancer does, and a 202 is followed up with the same key until the answer is final.
A job *fails* when its final answer is anything but 200: the rolling restart must leave none.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from service.core.auth import make_token
from service.core.keys import Keys
from service.jobs.stream import JobStream
from tests.cluster.topology import BUCKET, JWT_SECRET, PREFIX, Topology, s3_client
from tests.factories import make_image

SAFETY = 180.0  # seconds before a job is declared lost


@dataclass
class Job:
    user: str
    key: str
    body: dict[str, Any]
    first_api: int = -1
    answers: list[str] = field(default_factory=list)  # every answer, e.g. "api1:202", "api0:refused"
    status: int = 0
    outcome: dict[str, Any] | None = None


class Load:
    def __init__(self, top: Topology, users: list[str]) -> None:
        self.top, self.users = top, users
        self.clients = [httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(60, connect=3)) for url in top.api_urls]
        self.jobs: list[Job] = []
        self.granted: Counter[str] = Counter()
        self._turn = itertools.count()

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    def auth(self, user: str, roles: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(JWT_SECRET, user, roles=roles)}"}

    async def setup(self, credits: int) -> None:
        """Each user's source image in S3, and credits granted through the admin API."""
        image = make_image(width=160, height=90)
        async with s3_client(self.top) as s3:
            for user in self.users:
                await s3.put_object(  # type: ignore[attr-defined]
                    Bucket=BUCKET, Key=f"images/{user}/source-image.png", Body=image, ContentType="image/png"
                )
        for user in self.users:
            r = await self.clients[0].post(
                "/admin/credits/grants",
                json={"userId": user, "amount": credits, "reason": "cluster test"},
                headers=self.auth("cluster-admin", ["admin"]),
            )
            assert r.status_code in (200, 201), r.text
            self.granted[user] += credits

    def new_job(self) -> Job:
        n = len(self.jobs)
        user = self.users[n % len(self.users)]
        body = {"id": f"images/{user}/source-image.png", "prompt": f"cluster job {n}: waves", "duration": "5s"}
        job = Job(user, f"cluster-{n}-{uuid.uuid4().hex[:8]}", body)
        self.jobs.append(job)
        return job

    async def run_job(self, job: Job) -> Job:
        """Send the job until its answer is final (200 or an error other than an API stopping)."""
        deadline = time.monotonic() + SAFETY
        index = next(self._turn) % len(self.clients)
        job.first_api = index
        while time.monotonic() < deadline:
            client = self.clients[index]
            try:
                r = await client.post(
                    "/video-gen/image-to-video",
                    json=job.body,
                    headers={**self.auth(job.user), "Idempotency-Key": job.key},
                )
            except httpx.TransportError:
                job.answers.append(f"api{index}:refused")
                index = (index + 1) % len(self.clients)
                await asyncio.sleep(0.2)
                continue
            job.answers.append(f"api{index}:{r.status_code}")
            if r.status_code == 503:  # this API is stopping: the next one
                index = (index + 1) % len(self.clients)
                await asyncio.sleep(0.2)
            elif r.status_code == 202:  # still running: ask again with the same key
                await asyncio.sleep(0.3)
            else:
                job.status, job.outcome = r.status_code, r.json()
                return job
        job.answers.append("lost")
        return job

    async def drive(self, stop: asyncio.Event, in_flight: int = 4) -> None:
        """Keep ``in_flight`` jobs going until ``stop``; then let the last ones finish."""

        async def lane() -> None:
            while not stop.is_set():
                await self.run_job(self.new_job())

        await asyncio.gather(*(lane() for _ in range(in_flight)))

    async def run(self, count: int, in_flight: int = 4) -> None:
        jobs = [self.new_job() for _ in range(count)]
        gate = asyncio.Semaphore(in_flight)

        async def one(job: Job) -> None:
            async with gate:
                await self.run_job(job)

        await asyncio.gather(*(one(j) for j in jobs))


@dataclass
class Audit:
    problems: list[str]
    summary: str

    @property
    def ok(self) -> bool:
        return not self.problems


async def audit(load: Load) -> Audit:
    """No failed request, no job lost or charged twice, ledger verify clean, links resolve outside."""
    top, jobs = load.top, load.jobs
    problems: list[str] = []
    failed = [j for j in jobs if j.status != 200]
    problems += [f"job {j.key} ended {j.status or 'never'}: {j.outcome} after {j.answers}" for j in failed[:10]]
    if len(failed) > 10:
        problems.append(f"... {len(failed)} failed in all")
    first = Counter(j.first_api for j in jobs)
    if len(first) < len(top.api_ports):
        problems.append(f"requests did not spread over every API: {dict(first)}")
    conn = await asyncpg.connect(top.db_url)
    try:
        rows = await conn.fetch("SELECT id, user_id, status, output_key FROM generations")
        debits = await conn.fetch(
            "SELECT generation_id, COUNT(*) AS n FROM ledger_entries WHERE kind = 'debit' GROUP BY generation_id"
        )
        refunds = await conn.fetchval("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'refund'")
    finally:
        await conn.close()
    twice = [r["generation_id"] for r in debits if r["n"] > 1]
    problems += [f"generation {g} charged twice" for g in twice]
    statuses = Counter(r["status"] for r in rows)
    if statuses != Counter({"succeeded": len(jobs)}):
        problems.append(f"{len(jobs)} jobs sent, generations recorded: {dict(statuses)}")
    if refunds:
        problems.append(f"{refunds} refunds for jobs that all succeeded")
    keys = {j.outcome["s3Key"] for j in jobs if j.status == 200 and j.outcome}
    if keys != {r["output_key"] for r in rows}:
        problems.append("the videos answered are not the videos recorded")
    problems += await _check_videos(top, keys)
    problems += await _check_redis(top)
    verify = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "ledger",
        "verify",
        env=top.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await verify.communicate()
    verdict = out.decode().strip().splitlines()[-1] if out else ""
    if verify.returncode != 0:
        problems.append(f"video-gen ledger verify: {out.decode().strip()}")
    retried = sum(1 for j in jobs if any(a.endswith((":503", ":refused")) for a in j.answers))
    summary = (
        f"{len(jobs)} jobs ({', '.join(f'api{i}: {n}' for i, n in sorted(first.items()))} first), "
        f"{len(jobs) - len(failed)} succeeded, {len(failed)} failed, {retried} sent again to another API, "
        f"{len(twice)} charged twice; {verdict}"
    )
    return Audit(problems, summary)


async def _check_videos(top: Topology, keys: set[str]) -> list[str]:
    problems = []
    async with s3_client(top) as s3:
        for key in sorted(keys):
            try:
                await s3.head_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
            except Exception as exc:
                problems.append(f"video {key} missing from S3: {exc}")
    return problems


async def _check_redis(top: Topology) -> list[str]:
    keys = Keys(PREFIX)
    client = aioredis.Redis.from_url(top.redis.url)
    try:
        counts = await JobStream(client, keys, reply_ttl=1, meta_ttl=1, idempotency_ttl=1).queue_counts()
        waiting, pending, dead = counts.waiting, counts.running, counts.dead_letters  # every model's stream
    finally:
        await client.aclose()
    problems = [f"Redis still holds {waiting} waiting and {pending} pending jobs"] if waiting or pending else []
    return problems + ([f"{dead} dead letters"] if dead else [])


async def public_link(load: Load, job: Job) -> tuple[str, bytes]:
    """The job's download link (GET /video-gen/jobs/{id}) and what it downloads."""
    conn = await asyncpg.connect(load.top.db_url)
    try:
        job_id = await conn.fetchval("SELECT id FROM generations WHERE output_key = $1", job.outcome["s3Key"])  # type: ignore[index]
    finally:
        await conn.close()
    r = await load.clients[-1].get(f"/video-gen/jobs/{job_id}", headers=load.auth(job.user))
    assert r.status_code == 200, r.text
    url = r.json()["downloadUrl"]
    async with httpx.AsyncClient() as client:
        body = await client.get(url)
    assert body.status_code == 200, body.text
    return url, body.content
