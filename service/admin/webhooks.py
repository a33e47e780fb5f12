"""Webhook deliveries for admins: read one, and send a finished one again (audited)."""

from __future__ import annotations

import re

import msgspec

from service.admin import repository as actions
from service.core.db import write_transaction
from service.core.errors import Conflict, NotFound
from service.webhooks.messages import FINAL
from service.webhooks.queue import WebhookQueue
from service.webhooks.schemas import DeliveryOut, delivery_out

_DELIVERY_ID = re.compile(r"msg_[A-Za-z0-9_-]{1,64}_[a-z]{1,16}")


class ResendOut(msgspec.Struct, rename="camel", kw_only=True):
    delivery: DeliveryOut
    action_id: int


async def delivery(queue: WebhookQueue, delivery_id: str) -> DeliveryOut:
    """One delivery with its attempts; 404 when unknown (or expired after its retention)."""
    found = await queue.get(delivery_id) if _DELIVERY_ID.fullmatch(delivery_id) else None
    if found is None:
        raise NotFound(f"Webhook delivery {delivery_id} not found")
    return delivery_out(found)


async def resend(admin_id: str, delivery_id: str, reason: str, *, queue: WebhookQueue) -> ResendOut:
    """Send a delivered or failed delivery again, from the start of the retry schedule and with the
    same ``webhook-id`` (receivers deduplicate on it); 409 while it is still pending."""
    found = await queue.get(delivery_id) if _DELIVERY_ID.fullmatch(delivery_id) else None
    if found is None:
        raise NotFound(f"Webhook delivery {delivery_id} not found")
    if found.status not in FINAL:
        raise Conflict(f"Webhook delivery {delivery_id} is still pending: it is retried on its schedule")
    async with write_transaction():
        action_id = await actions.record(
            admin_id,
            "resend_webhook",
            reason=reason,
            target_user_id=found.user_id[:255],
            generation_id=found.job_id[:64],
            details={"deliveryId": delivery_id, "event": found.event.value, "previousStatus": found.status.value},
        )
        await queue.resend(found)
    return ResendOut(delivery=delivery_out(found), action_id=action_id)
