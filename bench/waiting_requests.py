"""Benchmark: many requests waiting on one API process, this service against the prototype.

For each size N and each system, in one run: a fresh API process and no worker (this service:
``video-gen api`` on a private PostgreSQL database and redis-server; the prototype: the
``../shared/peer-bench`` Litestar + Streams mux app in ``bench/.peers-venv``), N requests held
open by a client in its own process (``bench.holder``) until N jobs sit in the jobs stream; then
the API process's RSS per waiting request, its file descriptors and its connections to Redis; then
this script plays the workers: it builds every reply first (this service's: 200 and the spec's
success body, made like the worker's), then, with the clock running, writes them in pipelines of
5,000 jobs. Printed: how long the writes took, and how long until the last answer arrived, from
the first write and from the last one, and the API process's CPU time over the answers, per
request. Ratios are this service's figures over the prototype's, same N, same run.

    uv run python -m bench.waiting_requests [--sizes 1000,15000] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import peers
from bench.driver import render
from bench.harness import (
    PgDatabase,
    Procs,
    RedisCounter,
    cpu_seconds,
    free_port,
    run_dir,
    seed_users,
    service_env,
    wait_http,
)
from bench.pipeline import BIN, PROMPT, ROOT, SECRET, token
from bench.played_workers import replies_project, replies_prototype, write
from service.core.keys import Keys


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def redis_connections(pid: int, port: int) -> int:
    """TCP connections of ``pid`` to ``port`` on loopback (its sockets' inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def hold(name: str, api: subprocess.Popen, endpoint: str, requests: list[bytes], n: int, ctx: dict) -> dict:
    """Hold ``n`` requests on ``api``, measure, release them all, time the answers."""
    client, stream, work = ctx["client"], ctx["stream"], ctx["work"]
    idle = rss_kib(api.pid)
    out = work / f"held-{name}-{n}.json"
    lines = "".join(json.dumps(r.decode("latin-1")) + "\n" for r in requests)
    holder = subprocess.Popen(
        [sys.executable, "-m", "bench.holder", endpoint, str(n), str(out)], stdin=subprocess.PIPE, text=True, cwd=ROOT
    )
    holder.stdin.write(lines)
    holder.stdin.close()
    deadline = time.monotonic() + 600
    while client.xlen(stream) < n:
        if holder.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name}: only {client.xlen(stream)} of {n} requests got queued (holder exited)")
        time.sleep(0.2)
    time.sleep(1.0)
    held = {
        "rss_kib": rss_kib(api.pid),
        "fds": len(os.listdir(f"/proc/{api.pid}/fd")),
        "redis_conns": redis_connections(api.pid, ctx["redis_port"]),
    }
    batches = ctx["replies"]()
    cpu0 = cpu_seconds(api.pid)
    released = time.time()
    write(client, batches)
    written = time.time()
    holder.wait(600)
    answer_cpu = cpu_seconds(api.pid) - cpu0
    res = json.loads(out.read_text())["res"]
    statuses: dict[str, int] = {}
    for _, _, status in res:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "system": name,
        "n": n,
        "statuses": statuses,
        "errors": sum(v for k, v in statuses.items() if k != ctx["expected"]),
        "kib_per_request": (held["rss_kib"] - idle) / n,
        "fds": held["fds"],
        "redis_conns": held["redis_conns"],
        "answer_s": max(done for _, done, _ in res) - released,
        "write_s": written - released,
        "after_write_s": max(done for _, done, _ in res) - written,
        "api_us_per_answer": answer_cpu / n * 1e6,
    }


def project_row(n: int, rc: RedisCounter, pg: PgDatabase, procs: Procs, work: Path) -> dict:
    storage, port = work / "storage", free_port()
    env = service_env(
        SECRET,
        pg.url,
        rc.url,
        storage,
        port,
        DEFAULT_MODEL="local",
        LOG_LEVEL="WARNING",
        SYNC_WAIT_SECONDS="900",
    )
    subprocess.run([str(BIN / "video-gen"), "migrate"], env=env, check=True, capture_output=True)
    rc.flush()
    api = procs.start(f"api-{n}", [str(BIN / "video-gen"), "api"], env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/ready", api)
    users = [f"user{i}" for i in range(50)]
    sample = (ROOT / "service" / "assets" / "sample-image.png").read_bytes()
    seed_users(url, storage, users, token("bench-admin", ["admin"]), sample)
    endpoint = f"{url}/video-gen/image-to-video"
    body = {"prompt": PROMPT, "duration": "5s"}
    requests = [
        render(endpoint, token(u), json.dumps({**body, "id": f"images/{u}/source.png"}).encode()) for u in users
    ]
    keys = Keys()
    ctx = {
        "client": rc.client,
        "stream": keys.queue("local"),
        "work": work,
        "redis_port": int(rc.url.rsplit(":", 1)[1].split("/")[0]),
        "replies": lambda: replies_project(rc.client, keys),
        "expected": "200",
    }
    try:
        return hold("video-gen", api, endpoint, requests, n, ctx)
    finally:
        procs.stop(api)


def prototype_row(n: int, rc: RedisCounter, procs: Procs, work: Path, kit: Path) -> dict:
    rc.flush()
    port = free_port()
    env = {**os.environ, "REDIS_URL": rc.url, "PROTO_JWT_SECRET": SECRET, "HOLD_WAIT_S": "900"}
    cmd = [peers.python(), "-m", "uvicorn", "--app-dir", str(kit), "--loop", "uvloop", "--http", "httptools"]
    cmd += ["--no-access-log", "--log-level", "warning", "--backlog", "8192", "--port", str(port), "proto_app:app"]
    api = procs.start(f"proto-api-{n}", cmd, env)
    wait_http(f"http://127.0.0.1:{port}/stats", api)
    endpoint = f"http://127.0.0.1:{port}/v1/generate"
    body = json.dumps({"image_url": "https://example.com/img/cat.png", "prompt": PROMPT, "model": "veo3"}).encode()
    requests = [render(endpoint, token(f"user{i}"), body) for i in range(50)]
    ctx = {
        "client": rc.client,
        "stream": "jobs",
        "work": work,
        "redis_port": int(rc.url.rsplit(":", 1)[1].split("/")[0]),
        "replies": lambda: replies_prototype(rc.client),
        "expected": "200",
    }
    try:
        return hold("prototype", api, endpoint, requests, n, ctx)
    finally:
        procs.stop(api)


def table(rows: list[dict]) -> str:
    head = (
        f"{'system':>10} {'waiting':>8} {'errors':>7} {'KiB/req':>8} {'fds':>6} {'Redis':>6} "
        f"{'write s':>8} {'answer s':>9} {'after last write s':>19} {'API CPU us/answer':>18}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['system']:>10} {r['n']:>8} {r['errors']:>7} {r['kib_per_request']:>8.1f} {r['fds']:>6} "
            f"{r['redis_conns']:>6} {r['write_s']:>8.2f} {r['answer_s']:>9.2f} {r['after_write_s']:>19.2f} "
            f"{r['api_us_per_answer']:>18.0f}"
        )
    for r in rows:
        base = next((b for b in rows if b["system"] == "prototype" and b["n"] == r["n"]), None)
        if base is not None and r is not base:
            lines.append(
                f"{'vg/proto':>10} {r['n']:>8} {'':>7} {r['kib_per_request'] / base['kib_per_request']:>7.2f}x "
                f"{'':>6} {'':>6} {r['write_s'] / base['write_s']:>7.2f}x {r['answer_s'] / base['answer_s']:>8.2f}x "
                f"{r['after_write_s'] / base['after_write_s']:>18.2f}x "
                f"{r['api_us_per_answer'] / base['api_us_per_answer']:>17.2f}x"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,15000")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--peer-kit", default=str(ROOT.parent / "shared" / "peer-bench"))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kit = Path(args.peer_kit).resolve() / "peers"
    with run_dir("video-gen-bench-wait-") as tmp:
        work = Path(tmp)
        procs, rc, pg = Procs(work), RedisCounter(), PgDatabase()
        rows = []
        try:
            for n in sizes:
                rows.append(project_row(n, rc, pg, procs, work))
                if not args.no_peer:
                    rows.append(prototype_row(n, rc, procs, work, kit))
        except BaseException:
            print(f"process logs: {work} (kept until exit)", file=sys.stderr)
            raise
        finally:
            procs.stop_all()
            rc.close()
            pg.drop()
    print(f"\nrequests waiting on one API process, no worker; {os.cpu_count()} cores\n")
    print(table(rows))
    for r in rows:
        print(f"{r['system']} {r['n']}: statuses {r['statuses']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
