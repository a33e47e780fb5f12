"""Benchmark: the hot path of one job, this service against the peer-bench prototype, in one run.

One ``video-gen api`` and one ``video-gen worker`` process on a private PostgreSQL database and a
private redis-server, with the zero-latency ``bench-noop`` model (``bench/models``, installed into
this environment for the run and removed after). A driver process sends a fixed number of
image-to-video requests over HTTP with JWTs, ``--in-flight`` at a time, for ``--users`` users in
turn. Then the same for the bare Litestar -> Redis Streams -> asyncpg prototype of
``../shared/peer-bench`` (its own environment, ``bench/.peers-venv``, made on first use).

Both workers may run ``--worker-concurrency`` jobs at once (200, the prototype's own default): more
than are ever in flight, so neither waits for a slot. (At 64, as many slots as requests in flight,
this service's jobs waited for the slots of the jobs just answered: 557 and 663 jobs/s against 682
and 722 at 200, alternating, at ``2499dcb``.)

Printed for each: jobs/s, p50/p99 latency, CPU ms per job of the API and of the worker process,
of the PostgreSQL backends serving the database and of the redis-server, how busy the whole
machine was (near 100%, the cores rather than the design bound the figure), SQL statements per
job (the server log of the private database, ``log_statement = all``; pool resets counted apart)
and Redis commands per job (``INFO commandstats``, scripts' inner calls included), and the ratios
of this service to the prototype.

With ``--rounds N`` the systems run in turn N times and the table shows each figure's median (the
ratios are of the medians); a machine whose speed drifts then weighs on every system alike.

    uv run python -m bench.pipeline [--jobs 2000] [--in-flight 64] [--no-peer] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt

from bench import peers
from bench.driver import render
from bench.harness import (
    PgDatabase,
    Procs,
    RedisCounter,
    cpu_of,
    cpu_seconds,
    free_port,
    machine_busy,
    run_dir,
    seed_users,
    service_env,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "bench-secret-bench-secret-bench-secret-32b"
PROMPT = "a cat surfing a wave at sunset, cinematic"


def token(user: str, roles: list[str] | None = None) -> str:
    return jwt.encode(
        {"sub": user, "roles": roles or [], "iat": int(time.time()), "exp": int(time.time()) + 3600},
        SECRET,
        algorithm="HS256",
    )


def run_driver(url: str, requests: list[bytes], n: int, in_flight: int) -> dict:
    lines = "".join(json.dumps(r.decode("latin-1")) + "\n" for r in requests)
    out = subprocess.run(
        [sys.executable, "-m", "bench.driver", url, str(n), str(in_flight)],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout)


def profile(name: str, pid: int, folder: str, gil: bool = False) -> subprocess.Popen:
    """py-spy sampling ``pid`` until interrupted, into ``folder/name.txt`` (collapsed stacks); with
    ``gil``, only samples that hold the GIL (Python's CPU, not threads blocked in the kernel)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    out = Path(folder) / f"{name.replace(' ', '-')}.txt"
    return subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            str(out),
            "--nonblocking",
            *(["--gil"] if gil else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(
    name: str,
    url: str,
    requests: list[bytes],
    pids: dict[str, int],
    args: argparse.Namespace,
    redis: RedisCounter,
    pg: PgDatabase,
) -> dict:
    """Warm up, then drive ``args.jobs`` requests and read every counter around them."""
    run_driver(url, requests, args.warmup, args.in_flight)
    time.sleep(1.0)
    cpu0, calls0, log0 = {k: cpu_seconds(p) for k, p in pids.items()}, redis.calls(), pg.offset()
    backends = pg.backend_pids()
    servers0, busy0 = {"pg": cpu_of(backends), "redis": cpu_seconds(redis.pid)}, machine_busy()
    profilers = (
        [profile(f"{name}-{k}", pid, args.profile, args.profile_gil) for k, pid in pids.items()] if args.profile else []
    )
    result = run_driver(url, requests, args.jobs, args.in_flight)
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)
    time.sleep(1.0)  # let the last statements reach the log
    cpu1, calls1, log1 = {k: cpu_seconds(p) for k, p in pids.items()}, redis.calls(), pg.offset()
    servers1, busy1 = {"pg": cpu_of(backends), "redis": cpu_seconds(redis.pid)}, machine_busy()
    calls = calls1 - calls0
    calls["info"] = 0
    statements, resets = pg.statements(log0, log1)
    n = args.jobs
    row = {
        "system": name,
        "jobs": n,
        "ok": result["statuses"].get("200", 0),
        "statuses": result["statuses"],
        "jobs_per_s": result["per_s"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "sql_per_job": statements / n,
        "resets_per_job": resets / n,
        "redis_per_job": sum(calls.values()) / n,
        "redis_top": {k: round(v / n, 2) for k, v in (+calls).most_common(8)},
    }
    row.update({f"cpu_ms_{k}": (cpu1[k] - cpu0[k]) * 1e3 / n for k in pids})
    # The backends that served the warm-up (the pools' connections) serve the run as well.
    row.update({f"cpu_ms_{k}": (servers1[k] - servers0[k]) * 1e3 / n for k in servers0})
    row["machine_busy"] = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    return row


def run_project(
    args: argparse.Namespace, redis: RedisCounter, pg: PgDatabase, work: Path, procs: Procs, event_loop: str = "uvloop"
) -> dict:
    base = Path(args.storage_base) if args.storage_base else work
    storage, port = Path(tempfile.mkdtemp(prefix=f"storage-{event_loop}-", dir=base)), free_port()
    env = service_env(
        SECRET,
        pg.url,
        redis.url,
        storage,
        port,
        DEFAULT_MODEL="bench-noop",
        WORKER_CONCURRENCY=str(args.worker_concurrency),
        BENCH_CLIP=str(work / "clip.mp4"),
    )
    subprocess.run([str(BIN / "video-gen"), "migrate"], env=env, check=True, capture_output=True)
    redis.flush()
    worker = procs.start(f"worker-{event_loop}", [str(BIN / "video-gen"), "worker"], env, cwd=ROOT)
    api = procs.start(f"api-{event_loop}", [str(BIN / "video-gen"), "api"], env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/ready", api)
    users = [f"user{i}" for i in range(args.users)]
    sample = (ROOT / "service" / "assets" / "sample-image.png").read_bytes()
    seed_users(url, storage, users, token("bench-admin", ["admin"]), sample)
    endpoint = f"{url}/video-gen/image-to-video"
    requests = [
        render(
            endpoint,
            token(u),
            json.dumps({"id": f"images/{u}/source.png", "prompt": PROMPT, "duration": "5s"}).encode(),
        )
        for u in users
    ]
    try:
        name = "video-gen" if event_loop == "uvloop" else f"vg {event_loop}"
        return measure(name, endpoint, requests, {"api": api.pid, "worker": worker.pid}, args, redis, pg)
    finally:
        procs.stop(api)
        procs.stop(worker)


def run_prototype(args: argparse.Namespace, redis: RedisCounter, pg: PgDatabase, procs: Procs) -> dict:
    python, kit = peers.python(), Path(args.peer_kit).resolve() / "peers"
    pg.sql(
        "CREATE TABLE IF NOT EXISTS credits (user_id int PRIMARY KEY, balance bigint NOT NULL); "
        f"INSERT INTO credits SELECT g, 1000000000000 FROM generate_series(1, {args.users + 1}) g "
        "ON CONFLICT (user_id) DO NOTHING"
    )
    redis.flush()
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis.url, "PG_DSN": pg.url, "WORK": "pg", "PROTO_JWT_SECRET": SECRET}
    env["CONC"] = str(args.worker_concurrency)  # its own default, 200; the same limit as this service's
    worker = procs.start("proto-worker", [python, str(kit / "streams_worker.py")], env)
    api = procs.start(
        "proto-api",
        [
            python,
            "-m",
            "uvicorn",
            "--app-dir",
            str(kit),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--port",
            str(port),
            "proto_app:app",
        ],
        env,
    )
    wait_http(f"http://127.0.0.1:{port}/stats", api)
    endpoint = f"http://127.0.0.1:{port}/v1/generate"
    body = json.dumps(
        {"image_url": "https://example.com/img/cat.png", "prompt": PROMPT, "model": "veo3", "duration_s": 8}
    ).encode()
    requests = [render(endpoint, token(f"user{i}"), body) for i in range(args.users)]
    try:
        return measure("prototype", endpoint, requests, {"api": api.pid, "worker": worker.pid}, args, redis, pg)
    finally:
        procs.stop(api)
        procs.stop(worker)


COLUMNS = [
    ("system", "{}", 10),
    ("jobs/s", "{:.0f}", 8),
    ("p50 ms", "{:.1f}", 8),
    ("p99 ms", "{:.1f}", 8),
    ("API CPU ms/job", "{:.2f}", 15),
    ("worker CPU ms/job", "{:.2f}", 18),
    ("PG ms/job", "{:.2f}", 10),
    ("Redis ms/job", "{:.2f}", 13),
    ("busy", "{:.0%}", 5),
    ("SQL/job", "{:.2f}", 8),
    ("resets/job", "{:.2f}", 11),
    ("Redis/job", "{:.2f}", 10),
]
KEYS = [
    "system",
    "jobs_per_s",
    "p50_ms",
    "p99_ms",
    "cpu_ms_api",
    "cpu_ms_worker",
    "cpu_ms_pg",
    "cpu_ms_redis",
    "machine_busy",
    "sql_per_job",
    "resets_per_job",
    "redis_per_job",
]


def table(rows: list[dict]) -> str:
    """Every row, then each of this service's rows as a ratio of the prototype's (same run)."""
    head = " ".join(name.rjust(width) for name, _, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(" ".join(fmt.format(row[k]).rjust(w) for (_, fmt, w), k in zip(COLUMNS, KEYS)))
    base = next((r for r in rows if r["system"] == "prototype"), None)
    for row in rows:
        if base is None or row is base:
            continue
        ratio = [f"{row['system'][:6]}/proto"] + [
            f"{row[k] / base[k]:.2f}x" if base[k] and k != "machine_busy" else "-" for k in KEYS[1:]
        ]
        lines.append(" ".join(v.rjust(w) for v, (_, _, w) in zip(ratio, COLUMNS)))
    return "\n".join(lines)


def medians(rows: list[dict]) -> dict:
    """One system's rounds as one row: the median of each figure (the first round's other fields)."""
    return {**rows[0], **{k: statistics.median(r[k] for r in rows) for k in KEYS[1:]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=200,
        help="both workers' limit (the prototype's CONC): never the bound",
    )
    parser.add_argument("--peer-kit", default=str(ROOT.parent / "shared" / "peer-bench"))
    parser.add_argument("--no-peer", action="store_true", help="measure this service alone")
    parser.add_argument(
        "--loops",
        default="uvloop,asyncio",
        help="EVENT_LOOP values to run this service with (uvloop+httptools, or asyncio+h11)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternate the systems this many times; medians")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--shm", action="store_true", help="local storage on /dev/shm (fsync costs nothing)")
    parser.add_argument("--profile", metavar="DIR", help="sample each process with py-spy into DIR (collapsed stacks)")
    parser.add_argument("--profile-gil", action="store_true", help="with --profile: only samples holding the GIL")
    args = parser.parse_args(argv)
    shm = tempfile.TemporaryDirectory(prefix="video-gen-bench-", dir="/dev/shm") if args.shm else None
    with peers.bench_models(), run_dir("video-gen-bench-") as tmp, shm or contextlib.nullcontext():
        work = Path(tmp)
        args.storage_base = shm.name if shm else None  # removed with the run, like ``work``
        procs, redis, pg = Procs(work), RedisCounter(), PgDatabase()
        try:
            rows = []
            for _ in range(args.rounds):  # alternated, so that a slow spell of the machine hits all alike
                rows += [run_project(args, redis, pg, work, procs, loop) for loop in args.loops.split(",") if loop]
                if not args.no_peer:
                    rows.append(run_prototype(args, redis, pg, procs))
        except BaseException:
            print(f"process logs: {work} (kept until exit)", file=sys.stderr)
            raise
        finally:
            procs.stop_all()
            redis.close()
            pg.drop()
    print(
        f"\n{args.jobs} jobs, {args.in_flight} in flight, {args.users} users, "
        f"WORKER_CONCURRENCY={args.worker_concurrency}, {os.cpu_count()} cores\n"
    )
    ok = all(r["ok"] == r["jobs"] for r in rows)
    if args.rounds > 1:
        for system in dict.fromkeys(r["system"] for r in rows):
            rates = ", ".join(f"{r['jobs_per_s']:.0f}" for r in rows if r["system"] == system)
            print(f"{system}: jobs/s in each round {rates}")
        print(f"\nmedians of {args.rounds} rounds (each figure apart):\n")
        rows = [medians([r for r in rows if r["system"] == s]) for s in dict.fromkeys(r["system"] for r in rows)]
    print(table(rows))
    for row in rows:
        print(f"\n{row['system']}: statuses {row['statuses']}; Redis commands per job {row['redis_top']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
