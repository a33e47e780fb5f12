"""``WebhookQueue``: every Redis call of the webhook delivery queue.

A delivery is one string key (its ``WebhookDelivery``) and one member of the due set, scored by
when its next attempt is due. Queueing is idempotent (``SET NX`` and ``ZADD`` in one script): the
same event of the same job is queued once however many times its job is redelivered. Claiming
moves the due members' scores past the sender's timeout in the same script, so two workers never
take the same delivery, and a worker that dies with a claim loses nothing: the claim comes due
again. Recording an attempt rewrites the record and reschedules it (or, once final, takes it
off the due set and lets the record expire after ``WEBHOOK_RETENTION_SECONDS``) in one MULTI.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from service.core.keys import Keys
from service.webhooks.messages import FINAL, DeliveryStatus, WebhookDelivery, decode, encode

ENQUEUE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  return 1
end
return 0
"""

CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return ids
"""


def _ms(at: float) -> int:
    return int(at * 1000)


class WebhookQueue:
    """The deliveries of one key prefix."""

    def __init__(self, redis: Redis, keys: Keys, *, retention_seconds: int) -> None:
        self.redis, self.keys, self.retention = redis, keys, retention_seconds
        self._enqueue = redis.register_script(ENQUEUE)
        self._claim = redis.register_script(CLAIM)

    async def enqueue(self, delivery: WebhookDelivery) -> bool:
        """Queue ``delivery`` due at once, unless a delivery with its id exists (False then)."""
        delivery.next_at = delivery.next_at or time.time()
        keys = [self.keys.webhook(delivery.id), self.keys.webhooks_due]
        return bool(await self._enqueue(keys=keys, args=[encode(delivery), _ms(delivery.next_at), delivery.id]))

    async def claim(self, count: int, lease_seconds: float) -> list[WebhookDelivery]:
        """Up to ``count`` due deliveries, held for ``lease_seconds`` (then they come due again)."""
        now = time.time()
        ids = await self._claim(keys=[self.keys.webhooks_due], args=[_ms(now), _ms(now + lease_seconds), count])
        if not ids:
            return []
        names = [i.decode() if isinstance(i, bytes) else i for i in ids]
        raw = await self.redis.mget([self.keys.webhook(i) for i in names])
        found = [d for d in (decode(r) for r in raw if r) if d.status not in FINAL]
        if len(found) < len(names):  # a record expired, or is final: its due entry is stale
            await self.redis.zrem(self.keys.webhooks_due, *(set(names) - {d.id for d in found}))
        return found

    async def save(self, delivery: WebhookDelivery) -> None:
        """Store ``delivery`` after an attempt: due at ``next_at`` while pending; final, it leaves the
        due set and expires after the retention period."""
        key = self.keys.webhook(delivery.id)
        async with self.redis.pipeline(transaction=True) as pipe:
            if delivery.status in FINAL:
                pipe.set(key, encode(delivery), ex=self.retention)
                pipe.zrem(self.keys.webhooks_due, delivery.id)
            else:
                assert delivery.next_at is not None
                pipe.set(key, encode(delivery))
                pipe.zadd(self.keys.webhooks_due, {delivery.id: _ms(delivery.next_at)})
            await pipe.execute()

    async def postpone(self, delivery_ids: list[str], at: float) -> None:
        """Make claimed deliveries due at ``at`` (no attempt was made; they stay pending)."""
        await self.redis.zadd(self.keys.webhooks_due, dict.fromkeys(delivery_ids, _ms(at)), xx=True)

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        raw = await self.redis.get(self.keys.webhook(delivery_id))
        return decode(raw) if raw else None

    async def many(self, delivery_ids: list[str]) -> list[WebhookDelivery]:
        """The deliveries of ``delivery_ids`` that exist, in that order."""
        if not delivery_ids:
            return []
        raw = await self.redis.mget([self.keys.webhook(i) for i in delivery_ids])
        return [decode(r) for r in raw if r]

    async def resend(self, delivery: WebhookDelivery) -> None:
        """Send a final delivery again from the start of the schedule, with the same ``webhook-id``."""
        delivery.status, delivery.round_tries, delivery.next_at = DeliveryStatus.PENDING, 0, time.time()
        await self.save(delivery)

    async def due(self) -> int:
        """Deliveries pending (waiting for an attempt, or being attempted)."""
        return int(await self.redis.zcard(self.keys.webhooks_due))
