"""``video-gen probe api|worker``: the health checks of a container or pod, from inside it.

One image runs every role, so the check is a command of the image rather than a tool it may lack
(curl, redis-cli). The API answers ``/health/ready`` over loopback. A worker serves no HTTP; it is
healthy while one of its Redis connections (named ``<prefix>:worker:<host>-<pid>``, see
``workers/wiring.py``) has spoken within ``JOB_LEASE_SECONDS``: an idle worker blocks on the jobs
stream every ``BLOCK_MS`` and a busy one renews its leases every third of a lease, so a silent one
is hung or gone.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

from service.core.redis import make_dedicated_redis
from service.core.settings import Settings


def probe_api(settings: Settings, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether this host's API answers ready (Redis and the database reachable)."""
    url = f"http://127.0.0.1:{settings.port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


async def probe_worker(settings: Settings, host: str | None = None) -> tuple[bool, str]:
    """Whether a worker of this host is connected to Redis and has spoken within a lease."""
    if not settings.redis_url:
        return False, "REDIS_URL is not set"
    tag = f"{settings.redis_key_prefix}:worker:{host or socket.gethostname()}-"
    client = make_dedicated_redis(settings.redis_url, name=f"{settings.redis_key_prefix}:probe")
    try:
        rows = await asyncio.wait_for(client.client_list(), 5)
    except Exception as exc:
        return False, f"Redis unreachable: {exc}"
    finally:
        await client.aclose()
    idle = [int(r.get("idle", 0)) for r in rows if r.get("name", "").startswith(tag)]
    if not idle:
        return False, f"no Redis connection named {tag}*"
    quiet = min(idle)
    ok = quiet <= settings.job_lease_seconds
    return ok, f"{len(idle)} connections {tag}*, last spoke {quiet}s ago (limit {settings.job_lease_seconds:g}s)"
