"""taskiq-redis, tuned: a stream broker (``XREADGROUP``, 1 s block) and the async result backend.

Run by ``bench.queue_peers`` in ``bench/.peers-venv`` as ``taskiq worker taskiq_app:broker``;
the client (``client.py``) imports the same broker to send. ``REDIS_URL`` names the private server.
"""

import os

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ["REDIS_URL"]
# pools large enough that 100 callers and 200 tasks in flight never wait for a connection
broker = RedisStreamBroker(URL, xread_block=1000, max_connection_pool_size=1000).with_result_backend(
    RedisAsyncResultBackend(URL, result_ex_time=300, max_connection_pool_size=1000)
)


@broker.task(task_name="noop")
async def noop(x: int = 0) -> int:
    """The job: nothing, so the figure is the queue's own cost."""
    return x
