"""Benchmark: provider generations in flight in one worker process.

One ``video-gen api`` and one ``video-gen worker`` process on a private PostgreSQL database and a
private redis-server, with ``veo3`` (the real plugin and fal-client) against the fake fal queue of
``tests/fakes/fal_queue.py`` over HTTPS, each request taking ``--model-seconds`` on the fake.
``--jobs`` requests are queued at once (``Prefer: respond-async``), ``MODEL_CONCURRENCY=veo3=<jobs>``
so all run together. Printed: how many succeeded, were charged once (one debit each, no refund)
and submitted once to fal, the worker's peak RSS, the status polls per second the jobs cost while
they waited (backoff and jitter: ``FAL_POLL_SECONDS``, ``FAL_POLL_MAX_SECONDS``), the time from the
first submit to the last success against the model time (the baseline of this run), and the lease
renewals (one script call per renewal period, whatever the number of jobs).

    uv run python -m bench.inflight [--jobs 1000] [--model-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.driver import render
from bench.harness import PgDatabase, Procs, RedisCounter, free_port, run_dir, seed_users, service_env, wait_http
from bench.pipeline import BIN, ROOT, SECRET, run_driver, token
from tests.fakes.fal_queue import start_fal_server


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_rss_mib(pid: int) -> float:
    """The RSS of ``pid``'s children: the CPU pool's processes (``models_registry.cpu``)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(rss_mib(int(k)) for k in kids)
    except (OSError, ValueError):
        return 0.0


def fal_polls(base_url: str, ca: Path) -> tuple[int, int]:
    """(status polls, submissions) the fake has seen."""
    data = httpx.get(f"{base_url}/_control/submissions", verify=ssl.create_default_context(cafile=str(ca))).json()
    return int(data["status_polls"]), len(data["submissions"])


def outcomes(pg: PgDatabase) -> dict[str, int]:
    rows = pg.sql("SELECT status, count(*) AS n FROM generations GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


def run(args: argparse.Namespace, work: Path) -> dict:
    redis, pg, procs = RedisCounter(), PgDatabase(), Procs(work)
    fal_url, ca, stop_fal = start_fal_server(work)
    try:
        storage, port = work / "storage", free_port()
        host = fal_url.removeprefix("https://")
        env = service_env(
            SECRET,
            pg.url,
            redis.url,
            storage,
            port,
            LOG_LEVEL="WARNING",
            FAL_KEY="test-key",
            FAL_QUEUE_RUN_HOST=host,
            FAL_RUN_HOST=host,
            SSL_CERT_FILE=str(ca),
            DEFAULT_MODEL="veo3",
            MODEL_CONCURRENCY=f"veo3={args.jobs}",
            JOB_LEASE_SECONDS=str(args.lease_seconds),
        )
        subprocess_env = {k: v for k, v in env.items() if v is not None}
        subprocess.run([str(BIN / "video-gen"), "migrate"], env=subprocess_env, check=True, capture_output=True)
        worker = procs.start("worker", [str(BIN / "video-gen"), "worker"], subprocess_env, cwd=ROOT)
        api = procs.start("api", [str(BIN / "video-gen"), "api"], subprocess_env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health/ready", api)
        users = [f"user{i}" for i in range(20)]
        sample = (ROOT / "service" / "assets" / "sample-image.png").read_bytes()
        seed_users(url, storage, users, token("bench-admin", ["admin"]), sample)
        prompt = f"a lighthouse in a storm [time:{args.model_seconds:g}]"
        endpoint = f"{url}/video-gen/image-to-video"
        requests = [
            render(
                endpoint,
                token(u),
                json.dumps({"id": f"images/{u}/source.png", "prompt": prompt, "duration": "8s"}).encode(),
                {"Prefer": "respond-async"},
            )
            for u in users
        ]
        rss_start = rss_mib(worker.pid)
        calls0 = redis.calls()
        started = time.monotonic()
        queued = run_driver(endpoint, requests, args.jobs, 32)
        peak, pool_peak, polls_at, done = rss_start, 0.0, [], {}
        deadline = started + args.model_seconds * 3 + 300
        while time.monotonic() < deadline:
            peak = max(peak, rss_mib(worker.pid))
            pool_peak = max(pool_peak, children_rss_mib(worker.pid))
            polls_at.append((time.monotonic(), *fal_polls(fal_url, ca)))
            done = outcomes(pg)
            if sum(n for s, n in done.items() if s in ("succeeded", "failed")) >= args.jobs:
                break
            time.sleep(1.0)
        wall = time.monotonic() - started
        calls = redis.calls() - calls0
        debits = pg.sql(
            "SELECT count(*) AS n, count(DISTINCT generation_id) AS g FROM ledger_entries WHERE kind = 'debit'"
        )[0]
        refunds = pg.sql("SELECT count(*) AS n FROM ledger_entries WHERE kind = 'refund'")[0]["n"]
        polls, submissions = fal_polls(fal_url, ca)
        # status polls per second while every job was waiting on fal (after the last submit)
        window = [(t, p) for t, p, s in polls_at if s >= args.jobs]
        rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) > 1 else float("nan")
        return {
            "jobs": args.jobs,
            "queued_202": queued["statuses"].get("202", 0),
            "succeeded": done.get("succeeded", 0),
            "failed": done.get("failed", 0),
            "debits": int(debits["n"]),
            "charged_jobs": int(debits["g"]),
            "refunds": int(refunds),
            "fal_submissions": submissions,
            "status_polls": polls,
            "polls_per_s": rate,
            "rss_start_mib": rss_start,
            "rss_peak_mib": peak,
            "pool_rss_peak_mib": pool_peak,
            "wall_s": wall,
            "model_s": args.model_seconds,
            "renewals": calls.get("evalsha", 0),
            "redis_per_job": sum(calls.values()) / args.jobs,
        }
    finally:
        procs.stop_all()
        stop_fal()
        redis.close()
        pg.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--model-seconds", type=float, default=60.0)
    parser.add_argument("--lease-seconds", type=float, default=60.0)
    parser.add_argument("--json", help="also write the row to this file")
    args = parser.parse_args(argv)
    with run_dir("video-gen-bench-inflight-") as tmp:
        row = run(args, Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps([row], indent=2))
    print(
        f"{row['jobs']} veo3 jobs in flight in one worker ({os.cpu_count()} cores), "
        f"{row['model_s']:g} s each on fake fal:\n"
        f"  succeeded {row['succeeded']}, failed {row['failed']}; debits {row['debits']} for {row['charged_jobs']} "
        f"jobs, refunds {row['refunds']}; fal submissions {row['fal_submissions']}\n"
        f"  worker RSS {row['rss_start_mib']:.0f} MiB idle, {row['rss_peak_mib']:.0f} MiB peak "
        f"({(row['rss_peak_mib'] - row['rss_start_mib']) * 1024 / row['jobs']:.0f} KiB per job); its CPU pool's "
        f"processes {row['pool_rss_peak_mib']:.0f} MiB peak, apart\n"
        f"  status polls {row['status_polls']} in all, {row['polls_per_s']:.1f}/s while all waited "
        f"({row['polls_per_s'] / row['jobs'] * 1000:.1f}/s per 1,000 jobs)\n"
        f"  last success {row['wall_s']:.1f} s after the first submit: {row['wall_s'] / row['model_s']:.2f}x "
        f"the model time (baseline)\n"
        f"  Redis: {row['redis_per_job']:.1f} commands per job; script calls (lease renewals and others) "
        f"{row['renewals']}"
    )
    ok = row["succeeded"] == row["jobs"] == row["charged_jobs"] == row["debits"] == row["fal_submissions"]
    return 0 if ok and row["refunds"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
