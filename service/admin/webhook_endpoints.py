"""Webhook deliveries under ``/admin/webhooks`` (role ``admin``): read one, resend one."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from service.admin import webhooks as deliveries
from service.admin.schemas import RefundRequest, refund_messages
from service.core.auth import Principal, admin_guard
from service.core.validation import strict
from service.webhooks.queue import WebhookQueue
from service.webhooks.schemas import DeliveryOut


class WebhookAdminController(Controller):
    path = "/admin/webhooks"
    tags = ["admin"]
    guards = [admin_guard]

    @get("/{delivery_id:str}", summary="A webhook delivery (its id is its webhook-id) with its attempts")
    async def delivery(self, webhooks: NamedDependency[WebhookQueue], delivery_id: FromPath[str]) -> DeliveryOut:
        return await deliveries.delivery(webhooks, delivery_id)

    @post(
        "/{delivery_id:str}/resend",
        status_code=200,
        opt=strict(refund_messages),
        summary="Send a delivered or failed webhook again (the same webhook-id, the retry schedule anew)",
        description='Body: `{"reason": "..."}` (audited). 404 for an unknown delivery, 409 while it is pending.',
    )
    async def resend(
        self,
        principal: NamedDependency[Principal],
        webhooks: NamedDependency[WebhookQueue],
        delivery_id: FromPath[str],
        data: JSONBody[RefundRequest],
    ) -> deliveries.ResendOut:
        return await deliveries.resend(principal.user_id, delivery_id, data.reason, queue=webhooks)
