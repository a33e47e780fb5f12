"""The file descriptors an API process may hold, and so how many requests it can keep waiting.

Every waiting request is an open client connection, so one descriptor. At start the process raises
its soft ``RLIMIT_NOFILE`` to the hard limit (which only the operator can raise: ``ulimit -Hn``,
``LimitNOFILE=`` in systemd, ``ulimits: nofile`` in compose) and keeps ``RESERVED_FDS`` of them for
everything else (Redis and database pools, files, connections being refused). Past that many
waiting requests, new ones are refused at once with the spec's 503 instead of stalling in the
listen backlog.
"""

from __future__ import annotations

import resource

RESERVED_FDS = 256


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft descriptor limit to the hard one; returns (soft, hard) as they now are."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. macOS caps it lower: keep what we have
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def waiting_capacity(configured: int, soft_limit: int) -> int:
    """``MAX_WAITING_REQUESTS`` when set, else what the descriptors allow beyond the reserve."""
    if configured > 0:
        return configured
    return max(soft_limit - RESERVED_FDS, 1)
