"""saq, tuned: a Redis queue whose connections never time out and 200 jobs at once.

Run by ``bench.queue_peers`` in ``bench/.peers-venv`` as ``saq saq_app.settings``. The client
(``client.py``) makes its own queue the same way. ``REDIS_URL`` names the private server.
"""

import os

import redis.asyncio as aredis
from saq.queue.redis import RedisQueue


def make_queue() -> RedisQueue:
    """``socket_timeout=None``: redis-py's default 5 s would also cut saq's blocking ``BLMOVE``
    and strand the job it was waiting for."""
    client = aredis.from_url(os.environ["REDIS_URL"], max_connections=1000, socket_timeout=None)
    return RedisQueue(client)


async def noop(ctx: dict, *, x: int = 0) -> int:
    """The job: nothing, so the figure is the queue's own cost."""
    return x


settings = {"queue": make_queue(), "functions": [noop], "concurrency": 200}
