"""Benchmark: video-gen's job round trip against the peer-bench prototype and tuned taskiq-redis,
saq and arq, at the same number of jobs in flight, in one run.

video-gen and the prototype run as in ``bench.pipeline`` (HTTP request with a JWT -> job -> reply,
the zero-latency ``bench-noop`` model, ledger on a private PostgreSQL database). Each peer runs its
own worker process on a no-op job (``bench/queues``: ``taskiq_app.py``, ``saq_app.py``,
``arq_app.py``, 200 jobs at once, 5 ms polling where the peer polls) and ``bench/queues/client.py``
enqueues a job and waits for its result, ``--in-flight`` at a time. The peers run in
``bench/.peers-venv`` (taskiq-redis, saq) and ``bench/.arq-venv`` (arq needs redis-py 5), made
with uv on first use (``bench.peers``). Each system gets the private redis-server to itself,
flushed before it starts.

The peers' figure is their queue alone; video-gen's includes HTTP, JWT, the ledger's charge and
the stored result, so the ratio is what a caller of video-gen pays over a bare job queue.

Printed: jobs/s, p50/p99 of the round trip, CPU ms per job of the worker and of the caller (the
API process for video-gen and the prototype, the client for a peer), Redis commands per job, and
video-gen's jobs/s as a ratio of each system's.

    uv run python -m bench.queue_peers [--jobs 2000] [--in-flight 100] [--peers taskiq,saq,arq] [--no-proto]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import peers, pipeline
from bench.harness import PgDatabase, Procs, RedisCounter, run_dir

QUEUES = Path(__file__).resolve().parent / "queues"
NAMES = {"taskiq": "taskiq-redis", "saq": "saq", "arq": "arq"}
WORKER_START_S = 3.0  # taskiq's consumer group must exist before the first job is added


def worker_command(system: str, python: str) -> list[str]:
    """The peer's own worker CLI, one process, 200 jobs at once, logging warnings only."""
    bin_ = Path(python).parent
    if system == "taskiq":
        opts = ["--workers", "1", "--max-async-tasks", "200", "--log-level", "WARNING"]
        return [str(bin_ / "taskiq"), "worker", "taskiq_app:broker", *opts]
    if system == "saq":
        return [str(bin_ / "saq"), "saq_app.settings", "--workers", "1", "--quiet"]
    return [str(bin_ / "arq"), "--custom-log-dict", "arq_app.LOG_CONFIG", "arq_app.WorkerSettings"]


def run_queue(system: str, args: argparse.Namespace, redis: RedisCounter, procs: Procs) -> dict:
    """Start the peer's worker, drive it with ``client.py`` in the same venv, stop the worker."""
    python = peers.arq_python() if system == "arq" else peers.python()
    redis.flush()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(REDIS_URL=redis.url, PYTHONPATH=str(QUEUES))
    worker = procs.start(f"peer-{system}", worker_command(system, python), env, cwd=QUEUES)
    time.sleep(WORKER_START_S)
    try:
        if worker.poll() is not None:
            return {"system": NAMES[system], "error": f"worker exited {worker.returncode} (see its log)"}
        cmd = [python, str(QUEUES / "client.py"), system, "--jobs", str(args.jobs)]
        cmd += ["--in-flight", str(args.in_flight), "--warmup", str(args.warmup)]
        out = subprocess.run(
            cmd, env={**env, "WORKER_PID": str(worker.pid)}, cwd=QUEUES, capture_output=True, text=True, timeout=600
        )
        if out.returncode != 0:
            return {"system": NAMES[system], "error": out.stderr.strip().splitlines()[-1:]}
        return {**json.loads(out.stdout.splitlines()[-1]), "system": NAMES[system]}
    finally:
        procs.stop(worker, grace=10)


def from_pipeline(row: dict, in_flight: int) -> dict:
    """A ``bench.pipeline`` row in this table's terms (the API process is the caller)."""
    return {**row, "cpu_ms_client": row["cpu_ms_api"], "errors": row["jobs"] - row["ok"], "in_flight": in_flight}


COLUMNS = [
    ("system", "{}", 12),
    ("jobs/s", "{:.0f}", 8),
    ("p50 ms", "{:.1f}", 8),
    ("p99 ms", "{:.1f}", 8),
    ("worker CPU ms/job", "{:.2f}", 18),
    ("caller CPU ms/job", "{:.2f}", 18),
    ("Redis/job", "{:.2f}", 10),
    ("errors", "{:.0f}", 7),
    ("video-gen/this jobs/s", "{:.2f}x", 22),
]
KEYS = ["system", "jobs_per_s", "p50_ms", "p99_ms", "cpu_ms_worker", "cpu_ms_client", "redis_per_job", "errors"]


def table(rows: list[dict]) -> str:
    """Every system's row, with video-gen's jobs/s as a ratio of that system's (same run)."""
    head = " ".join(name.rjust(width) for name, _, width in COLUMNS)
    lines = [head, "-" * len(head)]
    ours = next((r for r in rows if r["system"] == "video-gen" and "error" not in r), None)
    for row in rows:
        if "error" in row:
            lines.append(f"{row['system']:>12} failed: {row['error']}")
            continue
        ratio = ours["jobs_per_s"] / row["jobs_per_s"] if ours and row["jobs_per_s"] else None
        cells = [fmt.format(row[k]) for (_, fmt, _), k in zip(COLUMNS, KEYS)]
        cells.append(COLUMNS[-1][1].format(ratio) if ratio is not None else "-")
        lines.append(" ".join(c.rjust(w) for c, (_, _, w) in zip(cells, COLUMNS)))
    return "\n".join(lines)


def measure_all(args: argparse.Namespace, work: Path) -> list[dict]:
    procs, redis, pg = Procs(work), RedisCounter(), PgDatabase()
    try:
        rows = [from_pipeline(pipeline.run_project(args, redis, pg, work, procs), args.in_flight)]
        if not args.no_proto:
            rows.append(from_pipeline(pipeline.run_prototype(args, redis, pg, procs), args.in_flight))
        rows += [run_queue(system, args, redis, procs) for system in args.peers.split(",") if system]
        return rows
    finally:
        procs.stop_all()
        redis.close()
        pg.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--users", type=int, default=64, help="video-gen's and the prototype's callers")
    parser.add_argument("--worker-concurrency", type=int, default=200, help="as the peers' workers: never the bound")
    parser.add_argument("--peers", default="taskiq,saq,arq")
    parser.add_argument("--no-proto", action="store_true", help="leave the peer-bench prototype out")
    parser.add_argument("--peer-kit", default=str(pipeline.ROOT.parent / "shared" / "peer-bench"))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    unknown = [p for p in args.peers.split(",") if p and p not in NAMES]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; one of {', '.join(NAMES)}")
    args.shm, args.profile, args.storage_base = False, None, None  # bench.pipeline's options, off here
    with peers.bench_models(), run_dir("video-gen-bench-peers-") as tmp:
        try:
            rows = measure_all(args, Path(tmp))
        except BaseException:
            print(f"process logs: {tmp} (kept until exit)", file=sys.stderr)
            raise
    print(
        f"\nno-op jobs, {args.jobs} per system after {args.warmup} warm-up, {args.in_flight} in flight, "
        f"{os.cpu_count()} cores\n"
    )
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all("error" not in r and r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
