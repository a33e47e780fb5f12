"""Benchmark: overhead under open load, this service against the prototype, in one run.

One ``video-gen api`` and one ``video-gen worker`` (the ``bench-sleep`` model: 2 s, from
``bench/models``) on a private PostgreSQL database and redis-server; then the ``../shared/peer-bench``
prototype (its API and its worker, 2 s sleep and a credit UPDATE per job). Poisson arrivals at
each ``--rates`` for ``--seconds`` each, sent by the kit's ``loadgen_open.py`` (its own process,
in ``bench/.peers-venv``): latency from the scheduled send time, overhead = latency - 2 s. Printed:
overhead p50/p99 and errors per rate and system, and this service's p99 over the prototype's.

    uv run python -m bench.open_loop [--rates 50,250,500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from bench import peers
from bench.harness import PgDatabase, Procs, RedisCounter, free_port, run_dir, service_env, wait_http
from bench.pipeline import BIN, PROMPT, ROOT, SECRET, token

SLEEP = 2.0


def load(kit: Path, url: str, reqs: Path, rate: float, seconds: float, label: str) -> dict:
    out = subprocess.run(
        [
            *(peers.python(), str(kit / "loadgen_open.py"), url, str(reqs), str(rate), str(seconds)),
            *("--sleep", str(SLEEP), "--label", label, "--seed", "1", "--drain", "30"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def project(args: argparse.Namespace, rc: RedisCounter, pg: PgDatabase, procs: Procs, work: Path) -> list[dict]:
    storage, port = work / "storage", free_port()
    env = service_env(
        SECRET,
        pg.url,
        rc.url,
        storage,
        port,
        DEFAULT_MODEL="bench-sleep",
        BENCH_SLEEP_SECONDS=str(SLEEP),
        BENCH_CLIP=str(work / "clip.mp4"),
        MODEL_CONCURRENCY="bench-sleep=2000",
        LOG_LEVEL="WARNING",
    )
    subprocess.run([str(BIN / "video-gen"), "migrate"], env=env, check=True, capture_output=True)
    rc.flush()
    worker = procs.start("worker", [str(BIN / "video-gen"), "worker"], env, cwd=ROOT)
    api = procs.start("api", [str(BIN / "video-gen"), "api"], env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/ready", api)
    users = [f"user{i}" for i in range(64)]
    sample = (ROOT / "service" / "assets" / "sample-image.png").read_bytes()
    admin = {"Authorization": f"Bearer {token('bench-admin', ['admin'])}", "Content-Type": "application/json"}
    lines = []
    for user in users:
        (storage / "images" / user).mkdir(parents=True, exist_ok=True)
        (storage / "images" / user / "source.png").write_bytes(sample)
        body = json.dumps({"userId": user, "amount": 10**9, "reason": "benchmark"}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{url}/admin/credits/grants", body, admin), timeout=30)
        lines.append(f"{token(user)}\t{json.dumps({'id': f'images/{user}/source.png', 'prompt': PROMPT})}\n")
    reqs = work / "reqs-project.tsv"
    reqs.write_text("".join(lines))
    try:
        return [
            load(args.kit, f"{url}/video-gen/image-to-video", reqs, r, args.seconds, "video-gen") for r in args.rates
        ]
    finally:
        procs.stop(api)
        procs.stop(worker)


def prototype(args: argparse.Namespace, rc: RedisCounter, pg: PgDatabase, procs: Procs, work: Path) -> list[dict]:
    pg.sql(
        "DROP TABLE IF EXISTS credits; CREATE TABLE credits (user_id int PRIMARY KEY, balance bigint NOT NULL); "
        "INSERT INTO credits SELECT g, 1000000000000 FROM generate_series(1, 100) g"
    )
    rc.flush()
    port, kit = free_port(), args.kit / "peers"
    env = {**os.environ, "REDIS_URL": rc.url, "PG_DSN": pg.url, "WORK": "pg", "MODEL_SLEEP": str(SLEEP)}
    env.update({"CONC": "2000", "PROTO_JWT_SECRET": SECRET})
    worker = procs.start("proto-worker", [peers.python(), str(kit / "streams_worker.py")], env)
    cmd = [peers.python(), "-m", "uvicorn", "--app-dir", str(kit), "--loop", "uvloop", "--http", "httptools"]
    cmd += ["--no-access-log", "--log-level", "warning", "--backlog", "8192", "--port", str(port), "proto_app:app"]
    api = procs.start("proto-api", cmd, env)
    wait_http(f"http://127.0.0.1:{port}/stats", api)
    body = json.dumps({"image_url": "https://example.com/img/cat.png", "prompt": PROMPT, "model": "veo3"})
    reqs = work / "reqs-proto.tsv"
    reqs.write_text("".join(f"{token(f'user{i}')}\t{body}\n" for i in range(64)))
    try:
        url = f"http://127.0.0.1:{port}/v1/generate"
        return [load(args.kit, url, reqs, r, args.seconds, "prototype") for r in args.rates]
    finally:
        procs.stop(api)
        procs.stop(worker)


def table(rows: list[dict]) -> str:
    head = f"{'system':>10} {'rate/s':>7} {'sent':>6} {'ok':>6} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'peak':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['label']:>10} {r['offered_rate']:>7g} {r['sent']:>6} {r['ok']:>6} "
            f"{r['errors'] + r['unanswered_after_drain']:>7} {r['overhead_p50_ms'] or float('nan'):>8.1f} "
            f"{r['overhead_p99_ms'] or float('nan'):>8.1f} {r['peak_inflight']:>6}"
        )
    for r in rows:
        base = next((b for b in rows if b["label"] == "prototype" and b["offered_rate"] == r["offered_rate"]), None)
        if base is not None and r is not base and r["overhead_p99_ms"] and base["overhead_p99_ms"]:
            p50 = r["overhead_p50_ms"] / base["overhead_p50_ms"] if base["overhead_p50_ms"] else float("nan")
            lines.append(
                f"{'vg/proto':>10} {r['offered_rate']:>7g} {'':>6} {'':>6} {'':>7} {p50:>7.2f}x "
                f"{r['overhead_p99_ms'] / base['overhead_p99_ms']:>7.2f}x"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,250,500")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--peer-kit", default=str(ROOT.parent / "shared" / "peer-bench"))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",")]
    args.kit = Path(args.peer_kit).resolve()
    with peers.bench_models(), run_dir("video-gen-bench-open-") as tmp:
        work = Path(tmp)
        procs, rc, pg = Procs(work), RedisCounter(), PgDatabase()
        try:
            rows = project(args, rc, pg, procs, work)
            if not args.no_peer:
                rows += prototype(args, rc, pg, procs, work)
        except BaseException:
            print(f"process logs: {work} (kept until exit)", file=sys.stderr)
            raise
        finally:
            procs.stop_all()
            rc.close()
            pg.drop()
    print(f"\nopen-loop Poisson arrivals, {SLEEP:g} s model, one API and one worker, {os.cpu_count()} cores")
    print("overhead = latency - 2 s, from the scheduled send time\n")
    print(table(rows))
    for r in rows:
        if r["error_sample"]:
            print(f"{r['label']} {r['offered_rate']:g}/s errors: {r['error_sample']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
