"""``python -m bench.holder URL N OUT`` with rendered requests on stdin (JSON strings, one a line):
open N connections (200 connecting at a time), send one request on each, wait for every answer,
write ``{"res": [[sent, done, status], ...]}`` to OUT. Its own process: the N descriptors and the
client's CPU are not the measured server's."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit


async def hold(url: str, requests: list[bytes], n: int) -> list[tuple[float, float, int | str]]:
    parts = urlsplit(url)
    gate, out = asyncio.Semaphore(200), []

    async def one(i: int) -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            except OSError as exc:
                out.append((time.time(), time.time(), repr(exc)))
                return
            writer.write(requests[i % len(requests)])
            await writer.drain()
            sent = time.time()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(x.split(b":", 1)[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length:")), 0
            )
            await reader.readexactly(length)
            out.append((sent, time.time(), int(head.split(b" ", 2)[1])))
        except Exception as exc:
            out.append((sent, time.time(), repr(exc)))
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


def main() -> None:
    url, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    requests = [json.loads(line).encode("latin-1") for line in sys.stdin if line.strip()]
    res = asyncio.run(hold(url, requests, n))
    with open(path, "w") as f:
        json.dump({"res": res}, f)


if __name__ == "__main__":
    main()
