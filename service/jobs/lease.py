"""The leases of the jobs one worker process runs.

A job is held by the consumer that has it pending; another consumer may take it over
(``XAUTOCLAIM``) once it has been idle for the lease. ``Leases`` renews every held job in one round
trip (a script per jobs stream) every ``lease / 3`` seconds, and reports the ones found taken
(``on_lost``: the worker cancels them). Before each step that costs money or cannot be undone
(charge, generate, upload), the job calls ``check``: while the last confirmation is younger than
half the lease, nobody can have taken the job (its idle time cannot have reached the lease), so
the check costs nothing; otherwise (a stalled process) it renews the lease there and then, and
raises ``LeaseLost`` if the job was taken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from service.jobs.messages import EntryRef
from service.jobs.stream import JobStream

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """Another worker took this job over: stop at once, neither reply nor acknowledge."""


class Leases:
    def __init__(
        self, stream: JobStream, consumer: str, lease_seconds: float, on_lost: Callable[[EntryRef], None]
    ) -> None:
        self.stream, self.consumer, self.lease = stream, consumer, lease_seconds
        self.every = max(lease_seconds / 3, 0.1)
        self._confirmed: dict[EntryRef, float] = {}  # entry -> monotonic time the lease was last known ours
        self._on_lost = on_lost

    def hold(self, ref: EntryRef, since: float) -> None:
        """Start renewing ``ref``, known ours as of ``since`` (taken before it was claimed)."""
        self._confirmed[ref] = since

    def release(self, ref: EntryRef) -> None:
        """Stop renewing it (done, or past the point where it could be taken back)."""
        self._confirmed.pop(ref, None)

    @property
    def held(self) -> list[EntryRef]:
        return list(self._confirmed)

    async def check(self, ref: EntryRef) -> None:
        """Raise ``LeaseLost`` unless this worker still holds ``ref``."""
        since = self._confirmed.get(ref)
        now = time.monotonic()
        if since is not None and now - since < self.lease / 2:
            return
        # Renewing (not just asking) makes it ours for a whole lease from now.
        if ref not in await self.stream.renew(self.consumer, [ref]):
            raise LeaseLost(f"job {ref.message_id} of {ref.stream} was taken over by another worker")
        if ref in self._confirmed:
            self._confirmed[ref] = now

    async def renew_once(self) -> None:
        ids = self.held
        if not ids:
            return
        started = time.monotonic()
        kept = await self.stream.renew(self.consumer, ids)
        for ref in ids:
            if ref not in self._confirmed:
                continue  # finished meanwhile
            if ref in kept:
                self._confirmed[ref] = started
            else:
                log.warning("job.lease_lost", message_id=ref.message_id, stream=ref.stream)
                self.release(ref)
                self._on_lost(ref)

    async def run(self) -> None:
        """Renew every ``lease / 3`` seconds until cancelled; Redis outages are ridden out."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.renew_once()
            except (RedisError, OSError) as exc:
                log.warning("worker.lease_renewal_failed", error=str(exc) or type(exc).__name__)
