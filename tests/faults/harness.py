"""The fault-injection harness: real processes, real failures, then an audit.

A ``Cluster`` is one scenario's world: its own redis-server (append-only, fsync always, as in
compose) on a free port, its own PostgreSQL database (copied from a migrated template), a local
storage directory, the API (``python -m service.cli api``) and worker processes (``python -m
service.cli worker``), configured only through the environment, as deployed. Workers can be told
to SIGKILL themselves at a pipeline stage (``VIDEO_GEN_CRASH_AT``, see ``workers/faults.py``).

A ``Client`` submits jobs over HTTP the way a careful client does (an ``Idempotency-Key`` on
every request) and resolves each accepted job to its final outcome. ``audit`` then checks, after
each scenario, that every accepted job is terminal, the ledger's invariants hold
(``service.ledger.verify``), no generation is charged twice, each user's balance is what the
outcomes say, no job is left in Redis, every success has its video, and (with the fake fal)
nothing was paid to the provider twice.

Timeouts here are safety nets that end a hung scenario as a failure; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from service.core import db
from service.core.embedded_redis import free_port, redis_server_binary
from service.core.keys import Keys
from service.core.settings import Settings
from service.jobs.stream import JobStream
from service.ledger import service as ledger
from tests.factories import make_image, token_for

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
JWT_SECRET = "fault-suite-secret-at-least-32-bytes-0123"
PREFIX = "vgfault"
COST = 750
SAFETY = 120.0  # seconds before a scenario step is declared hung


class ScenarioFailed(AssertionError):
    pass


def pg_url(database: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"


async def until(condition: Any, what: str, timeout: float = SAFETY, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"timed out waiting for {what}")
        await asyncio.sleep(every)


# -- infrastructure --------------------------------------------------------------------------


class RedisServer:
    """A private redis-server configured like compose: append-only, fsync on every write."""

    def __init__(self, directory: Path) -> None:
        self.dir, self.port = directory, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await until(self._pong, "redis-server to answer", timeout=20)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Databases:
    """A migrated template database, copied for each scenario; everything dropped at the end."""

    def __init__(self) -> None:
        self.template = f"vg_faults_tmpl_{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def prepare(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.template}"')
        self.made.append(self.template)
        await db.migrate(pg_url(self.template))

    async def fresh(self, tag: str) -> str:
        name = f"vg_faults_{tag}_{uuid.uuid4().hex[:6]}"[:63]
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.made.append(name)
        return name

    async def drop_all(self) -> None:
        for name in reversed(self.made):
            with contextlib.suppress(Exception):
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.clear()


@dataclass
class FakeFal:
    """The fake fal queue (tests/fakes/fal_queue.py) over HTTPS in its own process."""

    base_url: str
    ca_path: Path
    stop: Any

    @property
    def env(self) -> dict[str, str]:
        host = self.base_url.removeprefix("https://")
        return {
            "FAL_KEY": "test-key",
            "FAL_QUEUE_RUN_HOST": host,
            "FAL_RUN_HOST": host,
            "SSL_CERT_FILE": str(self.ca_path),
            "FAL_POLL_SECONDS": "0.2",
        }

    def submissions(self) -> Counter[str]:
        """Submissions per prompt since the fake started (refused ones included)."""
        import ssl

        trust = ssl.create_default_context(cafile=str(self.ca_path))
        data = httpx.get(f"{self.base_url}/_control/submissions", verify=trust, timeout=10).json()
        return Counter(s["arguments"].get("prompt", "") for s in data["submissions"])

    def cancelled(self) -> list[str]:
        """The request ids fal was asked to cancel since the fake started."""
        import ssl

        trust = ssl.create_default_context(cafile=str(self.ca_path))
        return list(httpx.get(f"{self.base_url}/_control/submissions", verify=trust, timeout=10).json()["cancelled"])


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def consumer(self) -> str:
        return f"{socket.gethostname()}-{self.pid}"

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Cluster:
    name: str
    dir: Path
    redis: RedisServer
    database: str
    fal: FakeFal | None
    env: dict[str, str]
    settings: Settings
    api_port: int
    procs: list[Proc] = field(default_factory=list)
    api: Proc | None = None
    keep: bool = False  # keep the directory (process logs) for a failed scenario

    @property
    def keys(self) -> Keys:
        return Keys(PREFIX)

    @property
    def db_url(self) -> str:
        return pg_url(self.database)

    def spawn(self, role: str, **extra_env: str) -> Proc:
        index = sum(1 for p in self.procs if p.role == role)
        log = self.dir / f"{role}-{index}.log"
        env = {**self.env, **extra_env}
        popen = subprocess.Popen(
            [sys.executable, "-m", "service.cli", role],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        proc = Proc(role, popen, log)
        self.procs.append(proc)
        return proc

    async def start_api(self) -> Proc:
        self.api = self.spawn("api")
        await self.api_ready()
        return self.api

    async def api_ready(self) -> None:
        async def ready() -> bool:
            assert self.api is not None
            if self.api.returncode is not None:
                raise ScenarioFailed(f"the API exited with {self.api.returncode}:\n{self.api.tail()}")
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"http://127.0.0.1:{self.api_port}/health/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        await until(ready, "the API to be ready", timeout=60)

    async def start_worker(self, *, crash_at: str | None = None, **env: str) -> Proc:
        proc = self.spawn("worker", **({"VIDEO_GEN_CRASH_AT": crash_at} if crash_at else {}), **env)
        await self.worker_ready(proc)
        return proc

    async def worker_ready(self, proc: Proc) -> None:
        async def registered() -> bool:
            if proc.returncode is not None:
                raise ScenarioFailed(f"a worker exited with {proc.returncode} while starting:\n{proc.tail()}")
            return proc.consumer in await self.consumers()

        await until(registered, "the worker to join the consumer group", timeout=60)

    async def consumers(self) -> set[str]:
        """Workers whose consumer loop is reading the jobs stream (their Redis connections are
        named ``<prefix>:worker:<consumer>``; Redis 7.0 lists a group consumer only once it read)."""
        client = aioredis.Redis.from_url(self.redis.url)
        try:
            rows = await client.client_list()
        except Exception:
            return set()
        finally:
            await client.aclose()
        tag = f"{PREFIX}:worker:"
        return {
            r["name"].removeprefix(tag).removesuffix(":claim")
            for r in rows
            if r.get("name", "").startswith(tag) and r.get("cmd") in ("xreadgroup", "xautoclaim")
        }

    async def wait_exit(self, proc: Proc, what: str, timeout: float = 60) -> int:
        await until(lambda: proc.returncode is not None, what, timeout=timeout)
        return int(proc.returncode or 0)

    def close(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self.redis.stop()


@contextlib.asynccontextmanager
async def cluster(
    name: str, dbs: Databases, *, fal: FakeFal | None = None, keep: bool = False, **env: str
) -> AsyncIterator[Cluster]:
    """A fresh world for one scenario; processes and redis stopped, database dropped by the caller."""
    directory = Path(tempfile.mkdtemp(prefix=f"video-gen-faults-{name}-"))
    redis = RedisServer(directory / "redis")
    await redis.start()
    database = await dbs.fresh(name.replace("-", "_"))
    api_port = free_port()
    base = {
        **{k: v for k, v in os.environ.items() if k not in ("VIDEO_GEN_CRASH_AT",)},
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": pg_url(database),
        "REDIS_URL": redis.url,
        "REDIS_KEY_PREFIX": PREFIX,
        "STORAGE_URL": f"file://{directory / 'storage'}",
        "TMPDIR": str(directory),  # the workers' workdirs: a killed one's are swept by the next, then removed with it
        "JWT_SECRET": JWT_SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(api_port),
        "WORKER_CONCURRENCY": "2",
        "SYNC_WAIT_SECONDS": "30",
        "JOB_LEASE_SECONDS": "2",
        "JOB_MAX_ATTEMPTS": "3",
        "SHUTDOWN_GRACE_SECONDS": "10",
        "LOCAL_MODEL_WIDTH": "160",
        "LOCAL_MODEL_HEIGHT": "90",
        "LOCAL_MODEL_FPS": "8",
        "RATE_LIMIT_PER_MINUTE": "0",
        "DEFAULT_MODEL": "local",
        "LOG_LEVEL": "INFO",
        **(fal.env if fal else {}),
        **env,
    }
    settings = Settings(
        database_url=pg_url(database),
        redis_url=redis.url,
        redis_key_prefix=PREFIX,
        storage_url=base["STORAGE_URL"],
        jwt_secret=JWT_SECRET,
        host="127.0.0.1",
        port=api_port,
    )
    c = Cluster(name, directory, redis, database, fal, base, settings, api_port)
    await db.connect(c.db_url)
    ok = False
    try:
        yield c
        ok = True
    finally:
        c.close()
        await db.disconnect()
        if ok and not keep and not c.keep:
            shutil.rmtree(directory, ignore_errors=True)


# -- the client ------------------------------------------------------------------------------


@dataclass
class Job:
    user: str
    key: str
    body: dict[str, Any]
    first_status: int = 0
    job_id: str | None = None
    status: int = 0  # the final outcome's status; 0 until resolved
    outcome: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.first_status not in (0, 503)


class Client:
    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{c.api_port}", timeout=httpx.Timeout(90, connect=5))
        self.jobs: list[Job] = []
        self.granted: Counter[str] = Counter()

    async def close(self) -> None:
        await self.http.aclose()

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(self.c.settings, user)}"}

    async def setup_user(self, user: str, credits: int) -> None:
        storage_root = Path(self.c.settings.storage_url.removeprefix("file://"))
        path = storage_root / "images" / user / "source-image.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(make_image(width=160, height=90))
        await ledger.grant(user, credits, actor="fault-suite", reason="fault suite grant")
        self.granted[user] += credits

    def new_job(self, user: str, *, prompt: str | None = None, model: str = "local", duration: str = "5s") -> Job:
        n = len(self.jobs)
        body = {
            "id": f"images/{user}/source-image.png",
            "model": model,
            "duration": duration,
            "prompt": prompt or f"{self.c.name} job {n}: a calm sea at dawn",
        }
        job = Job(user, f"{self.c.name}-{n}-{uuid.uuid4().hex[:6]}", body)
        self.jobs.append(job)
        return job

    async def post(self, job: Job, *, wait: bool = False) -> httpx.Response:
        headers = {**self.auth(job.user), "Idempotency-Key": job.key}
        if not wait:
            headers["Prefer"] = "respond-async"
        return await self.http.post("/video-gen/image-to-video", json=job.body, headers=headers)

    async def submit(self, job: Job, *, wait: bool = False) -> Job:
        """The first request of a job; a connection failure or 503 means it was not accepted."""
        try:
            r = await self.post(job, wait=wait)
        except httpx.HTTPError:
            job.first_status = 0
            return job
        job.first_status = r.status_code
        if r.status_code == 202:
            job.job_id = r.json()["jobId"]
        elif r.status_code != 503:
            job.status, job.outcome = r.status_code, r.json()
        return job

    async def resolve(self, job: Job, timeout: float = SAFETY) -> Job:
        """Retry (same key, same body) until the job's outcome is known, as a client would."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = await self.post(job)
                if r.status_code == 202:
                    assert job.job_id in (None, r.json()["jobId"]), "a retry was given another job"
                    job.job_id = r.json()["jobId"]
                elif r.status_code != 503:
                    if job.status and (r.status_code, r.json()) != (job.status, job.outcome):
                        raise ScenarioFailed(
                            f"job {job.key}: a retry answered {r.status_code} {r.text} after {job.status} {job.outcome}"
                        )
                    job.status, job.outcome = r.status_code, r.json()
                    return job
            except httpx.HTTPError:
                pass  # the API is restarting
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"job {job.key} ({job.job_id}) never finished")
            await asyncio.sleep(0.25)

    async def resolve_all(self) -> None:
        await asyncio.gather(*(self.resolve(j) for j in self.jobs if j.accepted))


# -- the audit -------------------------------------------------------------------------------


@dataclass
class Audit:
    ok: bool
    summary: str
    problems: list[str]


async def audit(c: Cluster, client: Client, *, paid_once: dict[str, int] | None = None, dead_letters: int = 0) -> Audit:
    """Every check of the brief, after a scenario. ``paid_once``: expected fal submissions per prompt."""
    from service.ledger.verify import verify_ledger

    problems: list[str] = []
    accepted = [j for j in client.jobs if j.accepted]
    unresolved = [j.key for j in accepted if not j.status or j.status == 202]
    if unresolved:
        problems.append(f"{len(unresolved)} accepted jobs not terminal")
    report = await verify_ledger()
    problems += [f"ledger: {v.invariant}: {v.detail}" for v in report.violations]
    conn = await asyncpg.connect(c.db_url)
    try:
        twice = await conn.fetch(
            "SELECT generation_id, COUNT(*) AS n FROM ledger_entries WHERE kind = 'debit' "
            "GROUP BY generation_id HAVING COUNT(*) > 1"
        )
        problems += [f"generation {r['generation_id']} charged {r['n']} times" for r in twice]
        open_rows = await conn.fetch(
            "SELECT id, status FROM generations WHERE status NOT IN ('succeeded', 'failed', 'cancelled')"
        )
        problems += [f"generation {r['id']} left {r['status']}" for r in open_rows]
        rows = await conn.fetch("SELECT id, user_id, status, output_key FROM generations")
        balances = {r["user_id"]: r["balance"] for r in await conn.fetch("SELECT user_id, balance FROM accounts")}
    finally:
        await conn.close()
    storage_root = Path(c.settings.storage_url.removeprefix("file://"))
    for r in rows:
        if r["status"] == "succeeded" and not (storage_root / r["output_key"]).is_file():
            problems.append(f"generation {r['id']} succeeded without its video")
    succeeded = Counter(j.user for j in accepted if j.status == 200)
    if sum(succeeded.values()) != sum(1 for r in rows if r["status"] == "succeeded"):
        problems.append(
            f"{sum(succeeded.values())} successes answered, "
            f"{sum(1 for r in rows if r['status'] == 'succeeded')} recorded"
        )
    for user, granted in client.granted.items():
        expected = granted - COST * succeeded[user]
        if balances.get(user) != expected:
            problems.append(f"{user}: balance {balances.get(user)} but the outcomes say {expected}")
    redis = aioredis.Redis.from_url(c.redis.url)
    try:
        # on every model's stream: never delivered, and delivered but not acknowledged
        counts = await JobStream(redis, c.keys, reply_ttl=1, meta_ttl=1, idempotency_ttl=1).queue_counts()
        left, pending, dead = counts.waiting, counts.running, counts.dead_letters
    finally:
        await redis.aclose()
    if left or pending:
        problems.append(f"Redis still holds {left} jobs ({pending} pending)")
    if dead != dead_letters:
        problems.append(f"{dead} dead letters, expected {dead_letters}")
    if paid_once is not None and c.fal is not None:
        sent = c.fal.submissions()
        for prompt, expected in paid_once.items():
            if sent[prompt] != expected:
                problems.append(f"fal got {sent[prompt]} submissions of {prompt!r}, expected {expected}")
    money = "balances match" if not any("balance" in p for p in problems) else "BALANCES DIFFER"
    summary = (
        f"{'ok' if not problems else 'FAIL'}: {len(rows)} generations, "
        f"{'invariants hold' if not report.violations else f'{len(report.violations)} VIOLATIONS'}, "
        f"{money}, {'no double charge' if not twice else f'{len(twice)} DOUBLE CHARGES'}"
    )
    return Audit(ok=not problems, summary=summary, problems=problems)


def outcome_summary(client: Client) -> str:
    counts = Counter(j.status for j in client.jobs if j.accepted)
    parts = [f"{counts.pop(200)} ok"] if 200 in counts else []
    parts += [f"{n} x {status}" for status, n in sorted(counts.items())]
    return ", ".join(parts) or "none"


def jobs_summary(client: Client) -> str:
    accepted = sum(1 for j in client.jobs if j.accepted)
    refused = len(client.jobs) - accepted
    return f"{accepted} accepted" + (f", {refused} refused" if refused else "")


async def pending_entries(c: Cluster) -> list[dict[str, Any]]:
    """The jobs delivered and not acknowledged, on every jobs stream (each model's, and the legacy one)."""
    client = aioredis.Redis.from_url(c.redis.url)
    try:
        rows: list[dict[str, Any]] = []
        for stream in await JobStream(client, c.keys, reply_ttl=1, meta_ttl=1, idempotency_ttl=1).job_streams():
            with contextlib.suppress(aioredis.ResponseError):  # no such stream, or no group on it yet
                rows += await client.xpending_range(stream, c.keys.jobs_group, min="-", max="+", count=100)
        return rows
    finally:
        await client.aclose()
