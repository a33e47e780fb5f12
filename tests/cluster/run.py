"""``just cluster`` (``python -m tests.cluster.run``): compose's topology as processes, kept running.

Starts what compose.yaml describes (tests/cluster/topology.py: Redis with AOF, a fresh PostgreSQL
database, moto's S3 server with the bucket, the migration, 2 APIs, 3 workers), grants the demo
user credits and stores its image in S3, prints both APIs, a token and a curl line, and stops
everything (the database dropped) on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from service.core.auth import make_token
from tests.cluster.load import Load
from tests.cluster.topology import topology

USER = "user123"


async def serve() -> None:
    async with topology() as top:
        load = Load(top, [USER])
        await load.setup(credits=750 * 10)
        await load.close()
        token = make_token(top.env["JWT_SECRET"], USER)
        print(f"running: {', '.join(sorted(top.services()))}; process logs in {top.dir}")
        print(f"APIs: {'  '.join(top.api_urls)}   S3: {top.s3_url}   Redis: {top.redis.url}")
        print(f"database: {top.db_url}")
        print(f"{len(top.running('worker'))} workers; token for {USER!r}:\n{token}\n")
        print(
            f'curl -X POST "{top.api_urls[1]}/video-gen/image-to-video" -H "Content-Type: application/json" '
            f'-H "Authorization: Bearer {token}" '
            f'-d \'{{"id": "images/{USER}/source-image.png", "prompt": "A beautiful sunset over the ocean"}}\''
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("stopping ...")


def main() -> int:
    logging.disable(logging.WARNING)
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
