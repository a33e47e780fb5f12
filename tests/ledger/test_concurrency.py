"""Concurrency, on SQLite and PostgreSQL: no request overspends and no credit is lost or invented.

1. The real deployment shape: the API and three ``video-gen worker`` processes on real Redis; a
   user with credits for exactly ten generations fires fifty requests at once.
2. A randomized storm of grants, charges, successes, failures, refunds and retries over shared
   accounts, from many tasks in this process and from a second process at the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from service.core.embedded_redis import free_port
from service.core.settings import project_root
from service.generations.tables import Generation
from service.ledger import service as ledger
from service.ledger.verify import verify_ledger
from tests.conftest import REDIS_URL
from tests.factories import grant, image_request, make_image, token_for
from tests.ledger.stress import USERS, drive

SECRET = "test-secret-at-least-32-bytes-long-0123"
INSUFFICIENT = {
    "statusCode": 400,
    "message": "Insufficient credits. Required: 750, Available: 0.0",
    "error": "Bad Request",
}


def _env(database_url: str, redis_prefix: str, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "DEFAULT_MODEL": "local",
        "LOCAL_MODEL_WIDTH": "160",
        "LOCAL_MODEL_HEIGHT": "90",
        "LOCAL_MODEL_FPS": "8",
        "WORKER_CONCURRENCY": "4",
        "JWT_SECRET": SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RATE_LIMIT_PER_MINUTE": "0",
        "SYNC_WAIT_SECONDS": "50",
        "LOG_LEVEL": "WARNING",
    }


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", command],
        cwd=project_root(),
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until_ready(client: httpx.AsyncClient, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        dead = [log for proc, log in zip(procs, logs) if proc.poll() is not None]
        assert not dead, "a process died:\n" + "\n".join(log.read_text()[-3000:] for log in dead)
        try:
            if (await client.get("/health/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the API did not become ready")


async def test_fifty_requests_for_ten_generations(ledger_db: str, redis_prefix: str, tmp_path: Path) -> None:
    image = tmp_path / "storage" / "images" / "u1" / "source-image.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(make_image())
    await grant("u1", 10 * 750)
    port = free_port()
    env = _env(ledger_db, redis_prefix, tmp_path, port)
    logs = [tmp_path / f"{name}.log" for name in ("api", "worker-1", "worker-2", "worker-3")]
    procs = [_spawn("api", env, logs[0])] + [_spawn("worker", env, log) for log in logs[1:]]
    try:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:
            await _until_ready(client, procs, logs)
            headers = {"Authorization": f"Bearer {token_for(_settings(env), 'u1')}"}
            answers = await asyncio.gather(
                *(client.post("/video-gen/image-to-video", json=image_request(), headers=headers) for _ in range(50))
            )
            admin = {"Authorization": f"Bearer {token_for(_settings(env), 'root', roles=['admin'])}"}
            verify = (await client.get("/admin/ledger/verify", headers=admin)).json()
        codes = Counter(a.status_code for a in answers)
        assert codes == {200: 10, 400: 40}, [a.text for a in answers if a.status_code not in (200, 400)]
        assert all(a.json() == INSUFFICIENT for a in answers if a.status_code == 400)
        successes = [a.json()["credits"] for a in answers if a.status_code == 200]
        # the balance is read when the reply is written (later debits may be in it), as a float
        assert all(
            c["used"] == 750
            and isinstance(c["balance"], float)
            and c["balance"] % 750 == 0
            and 0 <= c["balance"] <= 6750
            for c in successes
        )
        assert await ledger.balance_of("u1") == 0
        assert await Generation.count().where(Generation.status == "succeeded") == 10
        assert await Generation.count() == 10  # the refused forty left no record
        assert verify["ok"] is True and verify["violations"] == []
    finally:
        _stop(procs)


def _settings(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from service.core.settings import Settings

    return Settings.from_env(env)


async def test_a_randomized_storm_keeps_every_invariant(ledger_db: str) -> None:
    seed = int(os.environ.get("LEDGER_STRESS_SEED", uuid.uuid4().int % 10_000))
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ledger.stress",
        ledger_db,
        str(seed + 1),
        cwd=project_root(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert other.stdout is not None
        ready = await asyncio.wait_for(other.stdout.readline(), timeout=60)
        assert ready.strip() == b"ready", (await other.stderr.read()).decode()[-3000:]  # type: ignore[union-attr]
        net, stats = await drive(seed)
        out, err = await asyncio.wait_for(other.communicate(), timeout=120)
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
    assert other.returncode == 0, err.decode()[-3000:]
    theirs = json.loads(out.decode().strip().splitlines()[-1])
    net.update(Counter(theirs["net"]))
    for key, value in theirs["stats"].items():
        stats[key] += value
    report = await verify_ledger()
    assert report.violations == [], f"seed {seed}"
    for user in USERS:  # what the operations said they did is exactly what the balances show
        assert await ledger.balance_of(user) == net[user], f"seed {seed}, {user}"
    assert stats["charged"] > 20 and stats["fail"] and stats["admin_refund"] and stats["insufficient"], stats
