"""Benchmark: how many jobs per second one Redis stream carries, against what N workers need.

Every job of every API and worker goes through one jobs stream on one Redis (single-threaded), so
that stream is the one part that does not scale out. This drives the transport alone, the real
``JobStream`` calls with no model and no database: the API's submit (SET owner + XADD), a
worker's claim (XREADGROUP, batched), its complete (SET NX reply + XADD to the API's inbox + XACK,
one round trip) and the API's inbox read (XREAD), with the workers' periodic prune, against a
private redis-server. It measures jobs/s and the redis-server's CPU per job (from /proc), which
bounds what one Redis core can carry whatever the clients do. The baseline, in the same run, is
the least any stream queue costs: XADD, XREADGROUP and XACK alone. Both run with Redis's
append-only file off and with compose's ``--appendfsync always``.

    uv run python -m bench.stream_limit [--jobs 20000] [--lanes 32]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

from bench.harness import cpu_seconds
from service.core.embedded_redis import free_port, redis_server_binary
from service.core.keys import Keys
from service.core.redis import make_dedicated_redis, make_redis
from service.jobs.messages import JobMessage, JobReply
from service.jobs.stream import JobStream

BODY = msgspec.Raw(b'{"success":true,"s3Key":"videos/u/2026/11/0123456789abcdef.mp4","model":"local"}')


def start_redis(directory: Path, *, fsync: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    aof = ["--appendonly", "yes", "--appendfsync", "always"] if fsync else ["--appendonly", "no"]
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *aof,
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    return proc, f"redis://127.0.0.1:{port}/0"


async def wait_up(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                await client.ping()
                return
            except OSError:
                await asyncio.sleep(0.05)
            except aioredis.ConnectionError:
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def protocol(url: str, jobs: int, lanes: int) -> None:
    """The service's transport: ``lanes`` submitters (API requests) and as many worker slots."""
    keys = Keys(f"bench-{uuid.uuid4().hex[:6]}")
    redis = make_redis(url, max_connections=lanes + 8)
    stream = JobStream(redis, keys, reply_ttl=3600, meta_ttl=3600, idempotency_ttl=3600)
    await stream.ensure_groups(["bench"])
    inbox = keys.prefix + ":inbox:bench"
    await stream.open_inbox(inbox)
    reader, claimer = make_dedicated_redis(url), make_dedicated_redis(url)
    answered = 0
    done = asyncio.Event()

    async def api(lane: int) -> None:
        for n in range(lane, jobs, lanes):
            job = JobMessage(
                job_id=f"job-{n}", user_id=f"u{n % 64}", model="bench", prompt="p", source_key="images/u/s.png",
                duration="5s", inbox=inbox, submitted_at=time.time(),
            )  # fmt: skip
            await stream.submit(job)

    async def worker() -> None:
        while not done.is_set():
            for d in await stream.claim(claimer, "bench-worker", {"bench": 64}, 200):
                reply = JobReply(job_id=d.job.job_id, status_code=200, body=BODY)
                await stream.complete(d.ref, d.job, reply)
            await stream.prune([keys.queue("bench")], 60_000)

    async def replies() -> None:
        nonlocal answered
        after = "0-0"
        while answered < jobs:
            after, got = await stream.read_inbox(reader, inbox, after, 200)
            answered += len(got)
        done.set()

    await asyncio.gather(*(api(i) for i in range(lanes)), worker(), replies())
    for client in (reader, claimer, redis):
        await client.aclose()


async def bare(url: str, jobs: int, lanes: int) -> None:
    """The least a stream queue costs: XADD, XREADGROUP, XACK (no owner, no reply, no inbox)."""
    stream, group = f"bare-{uuid.uuid4().hex[:6]}", "g"
    redis = make_redis(url, max_connections=lanes + 8)
    await redis.xgroup_create(stream, group, id="0", mkstream=True)
    claimer = make_dedicated_redis(url)
    acked = 0

    async def api(lane: int) -> None:
        for n in range(lane, jobs, lanes):
            await redis.xadd(stream, {b"d": b"x" * 200, b"n": n})

    async def worker() -> None:
        nonlocal acked
        while acked < jobs:
            for _, entries in await claimer.xreadgroup(group, "c", {stream: ">"}, count=64, block=200) or []:
                for message_id, _ in entries:
                    await redis.xack(stream, group, message_id)
                    acked += 1

    await asyncio.gather(*(api(i) for i in range(lanes)), worker())
    await claimer.aclose()
    await redis.aclose()


def measure(kind: str, *, fsync: bool, jobs: int, lanes: int) -> tuple[float, float]:
    """(jobs/s, redis-server CPU microseconds per job)."""
    directory = Path(tempfile.mkdtemp(prefix="video-gen-bench-stream-"))
    proc, url = start_redis(directory, fsync=fsync)
    try:
        asyncio.run(wait_up(url))
        before, started = cpu_seconds(proc.pid), time.perf_counter()
        asyncio.run((protocol if kind == "video-gen" else bare)(url, jobs, lanes))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(proc.pid) - before
        return jobs / elapsed, cpu / jobs * 1e6
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--lanes", type=int, default=32, help="requests in flight")
    args = parser.parse_args()
    rows = []
    for fsync in (False, True):
        for kind in ("bare", "video-gen"):
            rate, us = measure(kind, fsync=fsync, jobs=args.jobs, lanes=args.lanes)
            rows.append((kind, "always" if fsync else "off", rate, us))
    base_rate, base_us = rows[0][2], rows[0][3]
    print(f"{args.jobs} jobs, {args.lanes} in flight, one client process and one redis-server on this machine\n")
    heads = [("transport", 10), ("AOF", 7), ("jobs/s", 8), ("vs bare", 8), ("redis us/job", 13), ("vs bare", 8)]
    print(" ".join(f"{h:>{w}}" for h, w in [*heads, ("1 core max", 11)]))
    for kind, aof, rate, us in rows:
        print(
            f"{kind:>10} {aof:>7} {rate:8.0f} {rate / base_rate:7.2f}x {us:13.1f} {us / base_us:7.2f}x "
            f"{1e6 / us:9.0f}/s"
        )
    _, _, rate, us = rows[-1]
    print("\nwhat a deployment needs: workers x WORKER_CONCURRENCY / seconds per job")
    print(f"{'workers':>8} {'slots':>6} {'s/job':>6} {'jobs/s':>8} {'of measured':>12} {'of 1 core max':>14}")
    for workers, slots, seconds in ((10, 4, 1.5), (100, 4, 1.5), (100, 100, 60.0), (1000, 100, 60.0)):
        need = workers * slots / seconds
        print(f"{workers:8} {slots:6} {seconds:6.1f} {need:8.1f} {need / rate:11.1%} {need * us / 1e6:13.1%}")


if __name__ == "__main__":
    main()
