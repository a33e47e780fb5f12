"""A load driver that costs little: exactly N requests over C keep-alive HTTP/1.1 connections.

Requests are pre-rendered bytes (one per user, used in turn); responses are read by their
``Content-Length``. Returns the statuses, the wall time and the latency percentiles. It runs in its
own process (``python -m bench.driver``) so its CPU is not charged to the systems it measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def render(url: str, token: str, body: bytes, extra: dict[str, str] | None = None) -> bytes:
    parts = urlsplit(url)
    headers = "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
    return (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def drive(url: str, requests: list[bytes], n: int, concurrency: int, timeout: float = 900.0) -> dict:
    parts = urlsplit(url)
    counter = iter(range(n))
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in counter:
                started = time.perf_counter()
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(connection() for _ in range(concurrency))), timeout)
    wall = time.perf_counter() - started
    return {
        "n": n,
        "statuses": statuses,
        "wall_s": wall,
        "per_s": n / wall,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


def main() -> None:
    """``python -m bench.driver URL N C`` with one rendered request per line of stdin (JSON strings)."""
    url, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    requests = [json.loads(line).encode("latin-1") for line in sys.stdin if line.strip()]
    print(json.dumps(asyncio.run(drive(url, requests, n, concurrency))))


if __name__ == "__main__":
    main()
