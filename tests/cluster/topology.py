"""compose.yaml's topology as processes on this machine, for ``just cluster`` and its tests.

The same services, wired the same way through the environment: ``redis`` (a redis-server with
its append-only file, fsync always, on its own port and directory), ``postgres`` (a fresh database
on the machine's PostgreSQL), ``s3`` (moto's server mode standing in for SeaweedFS, the bucket
created at start), ``migrate`` (``video-gen migrate``, run once, before anything else starts), two
``api`` processes on two ports and three ``worker`` processes (``video-gen api`` / ``worker``).
Presigned links name ``localhost`` where the processes use ``127.0.0.1``, as compose's name
``seaweedfs`` inside and a public address outside.

Timeouts are safety nets that end a hung start as a failure; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiobotocore.session import get_session

from service.core.embedded_redis import free_port
from tests.faults.harness import PG_ADMIN_URL, Proc, RedisServer, pg_url, until

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "vgcluster"
BUCKET = "videos"
JWT_SECRET = "cluster-secret-at-least-32-bytes-0123456789"
SERVICES = ("redis", "postgres", "s3", "migrate", "api", "worker")  # compose's, SeaweedFS as "s3"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "cluster-access-key",
    "AWS_SECRET_ACCESS_KEY": "cluster-secret-key",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "NO_PROXY": "127.0.0.1,localhost",
}


class StartFailed(RuntimeError):
    pass


@dataclass
class Topology:
    dir: Path
    redis: RedisServer
    database: str
    s3_port: int
    env: dict[str, str]
    api_ports: list[int]
    procs: list[Proc] = field(default_factory=list)
    apis: dict[int, Proc] = field(default_factory=dict)  # port -> the API process serving it
    infra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    keep: bool = False  # keep the directory (process logs) after a failed check

    @property
    def db_url(self) -> str:
        return pg_url(self.database)

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def running(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role and p.returncode is None]

    def services(self) -> set[str]:
        """The services started, named as in compose.yaml (the migration has run and exited)."""
        infra = {"redis"} if self.redis.proc else set()
        infra |= {"postgres", "s3"} if self.infra else set()
        return infra | {p.role for p in self.procs}

    def spawn(self, role: str, *args: str, **extra: str) -> Proc:
        index = sum(1 for p in self.procs if p.role == role)
        log = self.dir / f"{role}-{index}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", "service.cli", role, *args],
            cwd=ROOT,
            env={**self.env, **extra},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        proc = Proc(role, popen, log)
        self.procs.append(proc)
        return proc

    async def start_api(self, port: int) -> Proc:
        proc = self.spawn("api", PORT=str(port))
        self.apis[port] = proc

        async def ready() -> bool:
            if proc.returncode is not None:
                raise StartFailed(f"an API exited with {proc.returncode}:\n{proc.tail()}")
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        await until(ready, f"the API on port {port} to be ready", timeout=90)
        return proc

    async def start_worker(self) -> Proc:
        proc = self.spawn("worker")

        async def joined() -> bool:
            if proc.returncode is not None:
                raise StartFailed(f"a worker exited with {proc.returncode}:\n{proc.tail()}")
            return await self.redis_has_client(f"{PREFIX}:worker:{proc.consumer}:claim")

        await until(joined, "a worker to join the consumer group", timeout=90)
        return proc

    async def redis_has_client(self, name: str) -> bool:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.redis.url)
        try:
            return any(r.get("name") == name for r in await client.client_list())
        finally:
            await client.aclose()

    async def stop(self, proc: Proc, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Signal ``proc`` and wait for it to exit; its exit status."""
        proc.signal(sig)
        try:
            await until(lambda: proc.returncode is not None, f"{proc.role} {proc.pid} to exit", timeout=timeout)
        except Exception as exc:
            raise StartFailed(f"{exc}; its stacks:\n{_stacks(proc.pid)}\nits log:\n{proc.tail()}") from None
        return int(proc.returncode or 0)

    def close(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        for popen in self.infra:
            popen.terminate()
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        self.redis.stop()


def _stacks(pid: int) -> str:
    """What a hung process is doing (py-spy, a dev dependency), for the failure message."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not spy:
        return "(py-spy not installed)"
    out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, check=False, timeout=60)
    return out.stdout or out.stderr


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _start_s3(top: Topology) -> None:
    """moto in server mode on its own port, and the bucket (SeaweedFS's ``-bucket=videos``)."""
    log = (top.dir / "s3.log").open("wb")
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    popen = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(top.s3_port)], env=top.env, stdout=log, stderr=subprocess.STDOUT
    )
    top.infra.append(popen)

    async def up() -> bool:
        if popen.poll() is not None:
            raise StartFailed(f"moto_server exited with {popen.returncode}")
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{top.s3_url}/moto-api/")).status_code < 500
        except httpx.HTTPError:
            return False

    await until(up, "the S3 server to answer", timeout=60)
    async with s3_client(top) as client:
        await client.create_bucket(Bucket=BUCKET)


@contextlib.asynccontextmanager
async def s3_client(top: Topology) -> AsyncIterator[object]:
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    try:
        async with get_session().create_client("s3", endpoint_url=top.s3_url, region_name="us-east-1") as client:
            yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def _migrate(top: Topology) -> None:
    proc = top.spawn("migrate")
    await until(lambda: proc.returncode is not None, "the migration to finish", timeout=120)
    code = proc.returncode
    if code != 0:
        raise StartFailed(f"video-gen migrate exited with {code}:\n{proc.tail()}")


@contextlib.asynccontextmanager
async def topology(*, apis: int = 2, workers: int = 3, keep: bool = False, **env: str) -> AsyncIterator[Topology]:
    """Start everything in compose's order; stop it all and drop the database on the way out."""
    directory = Path(tempfile.mkdtemp(prefix="video-gen-cluster-"))
    database = f"vg_cluster_{uuid.uuid4().hex[:10]}"
    s3_port = free_port()
    api_ports = [free_port() for _ in range(apis)]
    redis = RedisServer(directory / "redis")
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "VIDEO_GEN_CRASH_AT"},
        **S3_ENV,
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": pg_url(database),
        "REDIS_URL": redis.url,
        "REDIS_KEY_PREFIX": PREFIX,
        "STORAGE_URL": f"s3://{BUCKET}",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "S3_PUBLIC_ENDPOINT_URL": f"http://localhost:{s3_port}",
        "S3_REGION": "us-east-1",
        "S3_PATH_STYLE": "true",
        "PUBLIC_URL": f"http://localhost:{api_ports[0]}",
        "JWT_SECRET": JWT_SECRET,
        "HOST": "127.0.0.1",
        "WORKER_CONCURRENCY": "2",
        "SYNC_WAIT_SECONDS": "30",
        "JOB_LEASE_SECONDS": "5",
        "SHUTDOWN_GRACE_SECONDS": "20",
        "LOCAL_MODEL_WIDTH": "160",
        "LOCAL_MODEL_HEIGHT": "90",
        "LOCAL_MODEL_FPS": "8",
        "RATE_LIMIT_PER_MINUTE": "0",
        "DEFAULT_MODEL": "local",
        "LOG_LEVEL": "INFO",
        **env,
    }
    top = Topology(directory, redis, database, s3_port, base, api_ports)
    ok = False
    await _admin_sql(f'CREATE DATABASE "{database}"')
    try:
        await redis.start()
        await _start_s3(top)
        await _migrate(top)
        await asyncio.gather(*(top.start_api(port) for port in api_ports))
        await asyncio.gather(*(top.start_worker() for _ in range(workers)))
        yield top
        ok = True
    finally:
        top.close()
        with contextlib.suppress(Exception):
            await _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if ok and not keep and not top.keep:
            shutil.rmtree(directory, ignore_errors=True)
