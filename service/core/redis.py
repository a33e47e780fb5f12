"""Redis clients, configured on purpose in one place.

redis-py's defaults do not suit us: its socket timeout would end a long blocking read, and its
async pool raises once ``max_connections`` are out. We use a blocking pool (callers wait for a
connection) and socket timeouts longer than any ``BLOCK`` we issue.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Every blocking command (XREAD/XREADGROUP BLOCK) uses at most this many milliseconds ...
BLOCK_MS = 2_000
# ... so a socket read may wait this long before the connection is presumed dead.
SOCKET_TIMEOUT = 15.0


def make_redis(url: str, *, max_connections: int = 64, pool_timeout: float = 20.0, name: str | None = None) -> Redis:
    """A client on a blocking pool: at most ``max_connections``, callers wait up to ``pool_timeout``.

    ``name`` is set with CLIENT SETNAME, so ``CLIENT LIST`` shows which process holds what.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        client_name=name,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis(connection_pool=pool)


def make_dedicated_redis(url: str, *, name: str | None = None) -> Redis:
    """A single-connection client for a long-running reader (the reply hub, a worker's claim loop)."""
    return Redis.from_url(
        url,
        client_name=name,
        single_connection_client=True,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
    )
