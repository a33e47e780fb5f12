"""``WebhookDispatcher``: what a worker process runs to send due webhook deliveries.

It claims due deliveries while it has free slots (``WEBHOOK_CONCURRENCY``) and sends each in its
own task, so a slow or dead receiver holds a slot for at most ``WEBHOOK_TIMEOUT_SECONDS`` and
never delays generations (the job scheduler is another loop). One receiver (scheme, host and
port) gets at most ``WEBHOOK_PER_HOST`` of the slots: a claimed delivery beyond that is put back
(not an attempt) until one of its receiver's attempts may have ended, so a dead receiver with many
deliveries cannot take the slots of the others. After each
attempt: a 2xx is delivered; a refused target (SSRF) fails at once; anything else is retried
after the next wait of ``WEBHOOK_RETRY_SCHEDULE`` (jittered by +-10 %), and fails once the
schedule is spent. Delivery is at-least-once: a worker that dies mid-attempt leaves its claim,
which comes due again after the claim lease, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from urllib.parse import urlsplit

import structlog
from redis.exceptions import RedisError

from service.core import metrics
from service.webhooks.messages import MAX_ATTEMPTS_KEPT, DeliveryStatus, WebhookDelivery
from service.webhooks.queue import WebhookQueue
from service.webhooks.sender import Result, Sender

log = structlog.get_logger(__name__)
JITTER = 0.1


def next_state(delivery: WebhookDelivery, result: Result, delays: list[float], now: float) -> None:
    """Record ``result`` on ``delivery`` and decide what follows: delivered, failed, or when to retry."""
    delivery.attempts = [*delivery.attempts, result.attempt][-MAX_ATTEMPTS_KEPT:]
    delivery.round_tries += 1
    if result.delivered:
        delivery.status, delivery.next_at = DeliveryStatus.DELIVERED, None
    elif result.refused or delivery.round_tries > len(delays):
        delivery.status, delivery.next_at = DeliveryStatus.FAILED, None
    else:
        wait = delays[delivery.round_tries - 1]
        delivery.next_at = now + wait * random.uniform(1 - JITTER, 1 + JITTER)


def _origin(url: str) -> str:
    """Scheme, host and port: what "one receiver" means for the per-host cap."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def _result(result: Result) -> str:
    attempt = result.attempt
    if result.delivered:
        return "delivered"
    if result.refused:
        return "refused"
    if attempt.status_code is not None:
        return "http_error"
    return "timeout" if (attempt.error or "").startswith("timed out") else "error"


def _count(delivery: WebhookDelivery, result: Result) -> None:
    event = delivery.event.value
    metrics.WEBHOOK_ATTEMPTS.labels(event, _result(result)).inc()
    metrics.WEBHOOK_ATTEMPT_SECONDS.observe(result.attempt.duration_ms / 1000)
    if delivery.status is not DeliveryStatus.PENDING:
        metrics.WEBHOOK_DELIVERIES_FINISHED.labels(event, delivery.status.value).inc()


class WebhookDispatcher:
    def __init__(
        self,
        queue: WebhookQueue,
        sender: Sender,
        *,
        delays: list[float],
        concurrency: int,
        poll_seconds: float,
        per_host: int | None = None,
    ) -> None:
        self.queue, self.sender, self.delays = queue, sender, delays
        self.concurrency, self.poll_seconds = concurrency, poll_seconds
        self.per_host = per_host or concurrency
        self.hosts: Counter[str] = Counter()  # attempts in flight per host
        self.lease_seconds = sender.timeout + 30.0  # a claim outlives any attempt
        self.running: dict[asyncio.Task[None], str] = {}  # attempts in flight -> their delivery
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now (a delivery was just queued by this process)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and send due deliveries until ``stop``."""
        while not self._stopping.is_set():
            free = self.concurrency - len(self.running)
            claimed: list[WebhookDelivery] = []
            if free > 0:
                try:
                    claimed = await self.queue.claim(free, self.lease_seconds)
                except (RedisError, OSError) as exc:
                    log.warning("webhook.claim_failed", error=str(exc) or type(exc).__name__)
            busy = [d.id for d in claimed if not self._start(d)]
            if busy:
                await self._put_back(busy)
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)  # more may be due: claim again at once
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._stopping.wait())]
            try:
                await asyncio.wait(waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def _start(self, delivery: WebhookDelivery) -> bool:
        """Send ``delivery`` in a task of its own; False when its host has all its slots."""
        host = _origin(delivery.url)
        if self.hosts[host] >= self.per_host:
            return False
        self.hosts[host] += 1
        task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.id}")
        self.running[task] = delivery.id

        def done(_: asyncio.Task[None]) -> None:
            self.running.pop(task, None)
            self.hosts[host] -= 1
            if not self.hosts[host]:
                del self.hosts[host]
            self._wake.set()  # a slot is free: its host's next delivery may go now

        task.add_done_callback(done)
        return True

    async def _put_back(self, delivery_ids: list[str]) -> None:
        """Deliveries whose host is busy come due again once an attempt to it may have ended."""
        at = time.time() + random.uniform(0.5, 1.0) * min(self.sender.timeout, 5.0)
        try:
            await self.queue.postpone(delivery_ids, at)
        except (RedisError, OSError) as exc:  # their claims come due after the lease instead
            log.warning("webhook.postpone_failed", error=str(exc) or type(exc).__name__)

    async def stop(self, grace: float) -> None:
        """Stop claiming; give attempts in flight ``grace`` seconds, then cancel them and make their
        deliveries due at once, for another worker (failing that, their claims come due after the
        lease)."""
        self._stopping.set()
        if self.running:
            await asyncio.wait(list(self.running), timeout=grace)
        left = dict(self.running)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        if left:
            try:
                await self.queue.postpone(list(left.values()), time.time())
            except (RedisError, OSError) as exc:
                log.warning("webhook.hand_over_failed", error=str(exc) or type(exc).__name__)

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        try:
            await self._attempt(delivery)
        except Exception:  # a bug, not the network: the claim comes due again after the lease
            log.exception("webhook.attempt_crashed", delivery_id=delivery.id)

    async def _attempt(self, delivery: WebhookDelivery) -> None:
        result = await self.sender.send(delivery)
        next_state(delivery, result, self.delays, time.time())
        attempt = result.attempt
        _count(delivery, result)
        log.info(
            f"webhook.{delivery.status.value if delivery.status is not DeliveryStatus.PENDING else 'retry'}",
            delivery_id=delivery.id,
            job_id=delivery.job_id,
            status_code=attempt.status_code,
            error=attempt.error,
            tries=delivery.round_tries,
        )
        for pause in (0.2, 1.0, 5.0, None):
            try:
                await self.queue.save(delivery)
                return
            except (RedisError, OSError) as exc:
                if pause is None:  # the claim comes due again: the attempt is repeated, not lost
                    log.warning("webhook.save_failed", delivery_id=delivery.id, error=str(exc))
                    return
                await asyncio.sleep(pause)
