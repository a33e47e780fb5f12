"""What every part of ``JobStream`` shares: its connection, key names, expiries, Lua scripts and
outbox, and the limits of the streams it writes. The parts are mixins of this class, one module
each (``stream`` the producer, ``feeds`` the inboxes and event feeds, ``claims`` and
``consumer`` the workers' side, ``operators`` the console's and admin API's), so that
``JobStream`` stays one object."""

from __future__ import annotations

from redis.asyncio import Redis

from service.core.keys import Keys
from service.jobs import scripts
from service.jobs.outbox import Batch, Outbox

INBOX_MAXLEN = 10_000  # replies an inbox keeps (approximately); its reader consumes them at once
OPEN_FIELD = b"open"  # the field of an inbox's opening entry, which carries no reply
INBOX_TTL_SECONDS = 3_600  # an inbox outlives its process by this long (the process renews it)
EVENTS_MAXLEN = 100_000  # job events kept (approximately); API processes read them as they come
CANCELS_MAXLEN = 10_000  # cancel notices kept (approximately); workers read them as they come


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamBase:
    """The jobs streams, their consumer group, the inboxes, replies and dead letters of one prefix."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        reply_ttl: int,
        meta_ttl: int,
        idempotency_ttl: int,
        dead_letter_maxlen: int = 10_000,
    ) -> None:
        self.redis, self.keys = redis, keys
        self.reply_ttl, self.meta_ttl, self.idempotency_ttl = reply_ttl, meta_ttl, idempotency_ttl
        self.dead_letter_maxlen = dead_letter_maxlen
        self._scripts = {
            name: redis.register_script(getattr(scripts, name))
            for name in ("SUBMIT_IDEMPOTENT", "COPY_REPLY", "RENEW", "HAND_OVER", "PRUNE", "CANCEL", "MIGRATE")
        }
        self._scripts["REQUEUE"] = redis.register_script(scripts.REQUEUE)
        self._outbox = Outbox(self._write)
        self._listed: dict[str, float] = {}  # model -> until when it counts as in ``Keys.queues``

    async def queue_models(self) -> list[str]:
        """The models that have a jobs stream (a job was queued for them, or a worker has them)."""
        return sorted(text(m) for m in await self.redis.smembers(self.keys.queues))

    async def job_streams(self) -> list[str]:
        """Every jobs stream: each model's, then the legacy shared one (while it exists)."""
        streams = [self.keys.queue(m) for m in await self.queue_models()]
        return [*streams, self.keys.legacy_jobs_stream]

    async def _write(self, batch: Batch) -> None:
        raise NotImplementedError  # ``ConsumerSide`` writes the outbox's batches
