"""What the benchmarks share: a private redis-server and PostgreSQL database, child processes
stopped by PID, and the counters each figure is read from (process CPU, Redis commands, SQL
statements from the server log of the private database).

Everything runs on loopback and is removed at the end; nothing here is imported by the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import redis

from service.core.embedded_redis import EmbeddedRedis

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_LOG_GLOB = "/var/log/postgresql/postgresql-*-main.log"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def run_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for one benchmark's files (its storage, its processes' logs and, as
    their ``TMPDIR``, the worker's model workdirs), removed at the end.

    It is made inside ``<tmp>/video-gen-bench-runs``, which is given ext4's top-directory flag
    (``chattr +T``, where that works) so that each run's directory lands in an inode group of its
    own. On an ext4 file system without a journal (this machine's), creating a file skips every
    inode of its group freed in the last minute or more (``recently_deleted`` in the kernel): a run
    whose files land where the previous run's were just deleted spent a third of the worker's CPU
    in that scan (about 350 jobs/s in the pipeline benchmark against about 440 otherwise, measured
    here), a cost of the benchmark's own cleanup, not of the service.
    """
    parent = Path(tempfile.gettempdir()) / "video-gen-bench-runs"
    if not parent.exists():
        parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):  # no chattr here: the runs share the groups, as before
            subprocess.run(["chattr", "+T", str(parent)], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as tmp:
        yield Path(tmp)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far (``/proc/stat``): their ratio over an
    interval says whether the benchmark had the cores to itself or saturated them."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_of(pids: list[int]) -> float:
    """``cpu_seconds`` summed over the processes of ``pids`` that still exist."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


class Procs:
    """Child processes, each in its own session, stopped by PID (TERM, then KILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir, self.children = log_dir, []

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 30.0) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.children):
            self.stop(proc, grace=10)


class RedisCounter:
    """A private redis-server and its ``INFO commandstats`` call counts."""

    def __init__(self) -> None:
        self.server = EmbeddedRedis()
        self.url = self.server.start()
        self.client = redis.Redis.from_url(self.url)

    def calls(self) -> Counter[str]:
        stats = self.client.info("commandstats")
        return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def flush(self) -> None:
        self.client.flushall()
        self.client.config_resetstat()

    def close(self) -> None:
        self.client.close()
        self.server.stop()


class PgDatabase:
    """A private PostgreSQL database that logs every statement (``log_statement = all`` on it alone).

    Statements are counted from the server log between two byte offsets, on lines naming this
    database; the pool's reset queries are counted apart.
    """

    def __init__(self) -> None:
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        self.sql(f'CREATE DATABASE "{self.name}"', admin=True)
        self.sql(f"ALTER DATABASE \"{self.name}\" SET log_statement = 'all'", admin=True)
        logs = sorted(Path("/var/log/postgresql").glob("postgresql-*-main.log"))
        self.log = Path(os.environ.get("BENCH_PG_LOG", logs[-1] if logs else PG_LOG_GLOB))

    @property
    def url(self) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.name}"

    def sql(self, query: str, *, admin: bool = False) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(PG_ADMIN_URL if admin else self.url)
            try:
                if ";" in query:  # several statements: the simple protocol, no rows
                    await conn.execute(query)
                    return []
                return await conn.fetch(query)
            finally:
                await conn.close()

        return asyncio.run(run())

    def backend_pids(self) -> list[int]:
        """The server processes serving this database's connections now."""
        rows = self.sql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.name}' AND pid <> pg_backend_pid()")
        return [int(r["pid"]) for r in rows]

    def offset(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def statements(self, start: int, end: int) -> tuple[int, int]:
        """(statements, pool resets) this database logged between two offsets of the server log."""
        if not self.log.exists():
            return -1, -1
        with self.log.open("rb") as f:
            f.seek(start)
            text = f.read(end - start).decode(errors="replace")
        marker = re.compile(rf"@{re.escape(self.name)} LOG:  (?:statement|execute [^:]*): (.*)")
        found = [m.group(1) for m in marker.finditer(text)]
        resets = sum(1 for s in found if "pg_advisory_unlock_all" in s)
        return len(found), resets

    def drop(self) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', admin=True)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode} (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:g} s")


def service_env(
    secret: str, database_url: str, redis_url: str, storage: Path, port: int, **extra: str
) -> dict[str, str]:
    """The environment of a benchmark's ``video-gen api`` / ``worker``: this process's, plus a private
    database, Redis and local storage, no rate limit, loopback on ``port``, and ``extra``."""
    return {
        **os.environ,
        "JWT_SECRET": secret,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STORAGE_URL": f"file://{storage}",
        "RATE_LIMIT_PER_MINUTE": "0",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "TMPDIR": str(storage.parent),  # the worker's model workdirs: beside the storage (``run_dir``)
        **extra,
    }


def free_port() -> int:
    from service.core.embedded_redis import free_port as port

    return port()


def seed_users(url: str, storage: Path, users: list[str], admin_token: str, image: bytes) -> None:
    """Each user gets ``image`` as ``images/<user>/source.png`` in the local store and a billion
    credits through the admin API (the way an operator would grant them)."""
    headers = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}
    for user in users:
        (storage / "images" / user).mkdir(parents=True, exist_ok=True)
        (storage / "images" / user / "source.png").write_bytes(image)
        body = json.dumps({"userId": user, "amount": 10**9, "reason": "benchmark"}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{url}/admin/credits/grants", body, headers), timeout=30)
