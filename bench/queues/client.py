"""Drive one peer queue: ``--jobs`` no-op jobs, ``--in-flight`` at a time, each an enqueue and a wait
for its result (the round trip a caller of video-gen makes); prints one JSON line.

    python client.py {taskiq,saq,arq} --jobs N --in-flight C [--warmup W]

Run by ``bench.queue_peers`` in the peer's own environment, beside that peer's running worker
(``WORKER_PID``: its CPU, children included, per job). Results are polled every 5 ms, the tuning
the peers' own docs give for latency. ``REDIS_URL`` names the private server, whose
``INFO commandstats`` gives the Redis commands per job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable

import psutil
import redis.asyncio as aredis
import uvloop

POLL_S = 0.005
TIMEOUT_S = 30

Call = Callable[[int], Awaitable[object]]


async def taskiq_call() -> tuple[Call, Callable[[], Awaitable[None]]]:
    from taskiq_app import broker, noop

    await broker.startup()

    async def call(i: int) -> object:
        task = await noop.kiq(i)
        return (await task.wait_result(check_interval=POLL_S, timeout=TIMEOUT_S)).return_value

    return call, broker.shutdown


async def saq_call() -> tuple[Call, Callable[[], Awaitable[None]]]:
    from saq_app import make_queue

    queue = make_queue()
    await queue.connect()

    async def call(i: int) -> object:
        return await queue.apply("noop", timeout=TIMEOUT_S, poll_interval=POLL_S, x=i)

    return call, queue.disconnect


async def arq_call() -> tuple[Call, Callable[[], Awaitable[None]]]:
    from arq.connections import RedisSettings, create_pool

    pool = await create_pool(RedisSettings.from_dsn(os.environ["REDIS_URL"]))

    async def call(i: int) -> object:
        job = await pool.enqueue_job("noop", i)
        return await job.result(timeout=TIMEOUT_S, poll_delay=POLL_S)

    return call, pool.aclose


def cpu_s(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (taskiq's worker CLI forks its workers)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


async def redis_calls(client: aredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def run(args: argparse.Namespace) -> dict:
    call, close = await {"taskiq": taskiq_call, "saq": saq_call, "arq": arq_call}[args.system]()
    for i in range(args.warmup):
        await call(i)
    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(range(args.jobs))

    async def caller() -> None:
        for i in numbers:
            start = time.perf_counter()
            try:
                if await call(i) != i:
                    raise ValueError("wrong result")
            except Exception as exc:
                errors.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - start)

    stats, me, worker = aredis.Redis.from_url(os.environ["REDIS_URL"]), os.getpid(), int(os.environ["WORKER_PID"])
    calls0, cpu0, own0 = await redis_calls(stats), cpu_s(worker), cpu_s(me)
    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(args.in_flight)))
    wall = time.perf_counter() - t0
    calls1, cpu1, own1 = await redis_calls(stats), cpu_s(worker), cpu_s(me)
    await stats.aclose()
    await close()
    n = max(len(latencies), 1)
    return {
        "system": args.system,
        "jobs": args.jobs,
        "ok": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "in_flight": args.in_flight,
        "jobs_per_s": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "cpu_ms_worker": (cpu1 - cpu0) * 1e3 / n,
        "cpu_ms_client": (own1 - own0) * 1e3 / n,
        "redis_per_job": (calls1 - calls0) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=["taskiq", "saq", "arq"])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    print(json.dumps(uvloop.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
