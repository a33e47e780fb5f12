"""``just cluster-test`` (``python -m tests.cluster.rolling``): a rolling restart under load.

The topology of compose.yaml as processes (tests/cluster/topology.py: Redis with AOF, a fresh
PostgreSQL database, moto's S3 server, the migration, 2 APIs, 3 workers). Clients keep jobs in
flight over both APIs while every worker and then every API is stopped with SIGTERM, in turn, and
started again before the next one stops. Then it audits: every job answered 200 (a request that
found its API stopping was sent to the other, as a load balancer does), every job recorded once,
none charged twice or refunded, every video in S3, nothing left in Redis, ``video-gen ledger
verify`` clean, and a download link that names the public endpoint and downloads the video.
Exit status 0 when all of it holds. Timeouts are safety nets; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable

from tests.cluster.load import Audit, Load, audit, public_link
from tests.cluster.topology import Topology, topology

USERS = [f"cluster-user-{i}" for i in range(4)]


async def roll(
    top: Topology, say: Callable[[str], None], *, workers: int | None = None, apis: int | None = None
) -> None:
    """SIGTERM each worker, then each API, in turn; each restarted (and ready) before the next."""
    for proc in top.running("worker")[:workers]:
        code = await top.stop(proc)
        new = await top.start_worker()
        say(f"worker {proc.pid} stopped (exit {code}), worker {new.pid} joined")
        if code != 0:
            raise AssertionError(f"worker {proc.pid} exited {code} on SIGTERM:\n{proc.tail()}")
    for port in list(top.api_ports)[:apis]:
        proc = top.apis[port]
        code = await top.stop(proc)
        new = await top.start_api(port)
        say(f"API :{port} {proc.pid} stopped (exit {code}), {new.pid} ready")
        if code not in (0, -signal.SIGTERM):  # uvicorn re-raises the signal once it has shut down
            raise AssertionError(f"API {proc.pid} exited {code} on SIGTERM:\n{proc.tail()}")


async def rolling_restart(
    say: Callable[[str], None] = print, *, in_flight: int = 4, keep: bool = False
) -> tuple[Audit, Topology]:
    async with topology(keep=keep) as top:
        say(f"started: {', '.join(sorted(top.services()))} (APIs on {top.api_ports}); logs in {top.dir}")
        load = Load(top, USERS)
        try:
            await load.setup(credits=750 * 1000)
            stop = asyncio.Event()
            traffic = asyncio.create_task(load.drive(stop, in_flight=in_flight))
            await asyncio.sleep(3)  # jobs in flight everywhere before the first SIGTERM
            started = time.monotonic()
            try:
                await roll(top, say)
            finally:
                await asyncio.sleep(3)  # and some after the last restart
                stop.set()
                await traffic
            say(f"rolling restart of 3 workers and 2 APIs took {time.monotonic() - started:.0f} s")
            result = await audit(load)
            done = next((j for j in load.jobs if j.status == 200), None)
            if done:
                url, video = await public_link(load, done)
                say(f"download link {url.split('?')[0]}?... gave {len(video)} bytes")
                if not url.startswith(top.env["S3_PUBLIC_ENDPOINT_URL"]):
                    result.problems.append(f"the download link {url} does not name S3_PUBLIC_ENDPOINT_URL")
            top.keep = not result.ok
            return result, top
        finally:
            await load.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=4, help="jobs kept in flight (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the process logs")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    result, top = asyncio.run(rolling_restart(in_flight=args.in_flight, keep=args.keep))
    print(("PASS: " if result.ok else "FAIL: ") + result.summary)
    for problem in result.problems:
        print(f"    PROBLEM: {problem}")
    if not result.ok:
        print(f"    process logs in {top.dir}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
