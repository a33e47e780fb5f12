"""The leases of the jobs one worker process runs.

A job is held by the consumer that has it pending; another consumer may take it over
(``XAUTOCLAIM``) once it has been idle for the lease. ``Leases`` renews every held job in one round
trip every ``lease / 3`` seconds, and reports the ones found taken (``on_lost``: the worker cancels
them). Before each step that costs money or cannot be undone (charge, generate, upload), the job
calls ``check``: while the last confirmation is younger than half the lease, nobody can have taken
the job (its idle time cannot have reached the lease), so the check costs nothing; otherwise (a
stalled process) it renews the lease there and then, and raises ``LeaseLost`` if the job was taken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from service.jobs.stream import JobStream

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """Another worker took this job over: stop at once, neither reply nor acknowledge."""


class Leases:
    def __init__(self, stream: JobStream, consumer: str, lease_seconds: float, on_lost: Callable[[str], None]) -> None:
        self.stream, self.consumer, self.lease = stream, consumer, lease_seconds
        self.every = max(lease_seconds / 3, 0.1)
        self._confirmed: dict[str, float] = {}  # message id -> monotonic time the lease was last known ours
        self._on_lost = on_lost

    def hold(self, message_id: str, since: float) -> None:
        """Start renewing ``message_id``, known ours as of ``since`` (taken before it was claimed)."""
        self._confirmed[message_id] = since

    def release(self, message_id: str) -> None:
        """Stop renewing it (done, or past the point where it could be taken back)."""
        self._confirmed.pop(message_id, None)

    @property
    def held(self) -> list[str]:
        return list(self._confirmed)

    async def check(self, message_id: str) -> None:
        """Raise ``LeaseLost`` unless this worker still holds ``message_id``."""
        since = self._confirmed.get(message_id)
        now = time.monotonic()
        if since is not None and now - since < self.lease / 2:
            return
        # Renewing (not just asking) makes it ours for a whole lease from now.
        if message_id not in await self.stream.renew(self.consumer, [message_id]):
            raise LeaseLost(f"job {message_id} was taken over by another worker")
        if message_id in self._confirmed:
            self._confirmed[message_id] = now

    async def renew_once(self) -> None:
        ids = self.held
        if not ids:
            return
        started = time.monotonic()
        kept = await self.stream.renew(self.consumer, ids)
        for message_id in ids:
            if message_id not in self._confirmed:
                continue  # finished meanwhile
            if message_id in kept:
                self._confirmed[message_id] = started
            else:
                log.warning("job.lease_lost", message_id=message_id)
                self.release(message_id)
                self._on_lost(message_id)

    async def run(self) -> None:
        """Renew every ``lease / 3`` seconds until cancelled; Redis outages are ridden out."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.renew_once()
            except (RedisError, OSError) as exc:
                log.warning("worker.lease_renewal_failed", error=str(exc) or type(exc).__name__)
