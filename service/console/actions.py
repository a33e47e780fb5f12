"""The console's state-changing forms (role ``admin``, CSRF-checked): refund a generation, grant
credits, requeue or discard a dead letter, resend a webhook.

Each takes two steps (``confirmation.py``). The first POST changes nothing: it answers a
confirmation page that says exactly what will happen. The second (``confirm=yes``) calls the admin
service, the same function the admin API calls, and redirects (303) to the page that shows the
result, so a reload never repeats it; the database's one-refund rule and the stream's atomic
requeue make a double submit harmless anyway. Problems (an empty reason, a refund already made)
are shown on the confirmation page with the admin API's words and status.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from service.admin import queue
from service.admin import service as admin
from service.admin import webhooks as deliveries
from service.console.confirmation import Form, confirm_page, error_messages, two_step
from service.console.forms import GrantForm, ReasonForm, amount_of, done_url, reason_problems
from service.core.auth import Principal, admin_guard
from service.core.errors import AppError, NotFound
from service.generations.views import generation_of
from service.jobs.stream import JobStream
from service.ledger.service import balance_of
from service.webhooks.queue import WebhookQueue


class ConsoleActions(Controller):
    path = "/console"
    guards = [admin_guard]

    @post("/generations/{generation_id:str}/refund", status_code=200)
    async def refund(
        self,
        principal: NamedDependency[Principal],
        generation_id: FromPath[str],
        data: Annotated[ReasonForm, Form],
    ) -> Template | Redirect:
        record = await generation_of(generation_id)
        if record is None:
            raise NotFound(f"Generation {generation_id} not found")
        page = f"/console/generations/{generation_id}"
        screen = {
            "title": f"Refund {record.credits_charged} credits to {record.user_id}?",
            "lines": [
                ("Generation", generation_id),
                ("User", record.user_id),
                ("Status", str(record.status)),
                ("Charged", record.credits_charged),
                ("Already refunded", record.credits_refunded),
                ("Balance now", await balance_of(record.user_id)),
            ],
            "action": f"{page}/refund",
            "cancel": page,
            "button": f"Refund {record.credits_charged} credits",
            "reason": data.reason,
        }
        return await two_step(
            screen,
            data,
            lambda reason: admin.refund_generation(principal.user_id, generation_id, reason),
            done=page,
            kind="refund",
        )

    @post("/generations/{generation_id:str}/webhooks/{delivery_id:str}/resend", status_code=200)
    async def resend(
        self,
        principal: NamedDependency[Principal],
        webhooks: NamedDependency[WebhookQueue],
        generation_id: FromPath[str],
        delivery_id: FromPath[str],
        data: Annotated[ReasonForm, Form],
    ) -> Template | Redirect:
        page = f"/console/generations/{generation_id}"
        delivery = await deliveries.delivery(webhooks, delivery_id)
        screen = {
            "title": f"Send {delivery.event} to {delivery.url} again?",
            "lines": [("Webhook id", delivery.id), ("Status", delivery.status), ("Attempts", len(delivery.attempts))],
            "warning": "The same event is sent again with the same webhook-id (receivers deduplicate on it), "
            "retried on the whole schedule until a 2xx.",
            "action": f"{page}/webhooks/{delivery_id}/resend",
            "cancel": page,
            "button": "Send it again",
            "reason": data.reason,
        }
        return await two_step(
            screen,
            data,
            lambda reason: deliveries.resend(principal.user_id, delivery_id, reason, queue=webhooks),
            done=page,
            kind="resend",
        )

    @post("/users/{user_id:str}/grant", status_code=200)
    async def grant(
        self, principal: NamedDependency[Principal], user_id: FromPath[str], data: Annotated[GrantForm, Form]
    ) -> Template | Redirect:
        page = f"/console/users/{user_id}"
        amount, problems = amount_of(data.amount)
        balance = await balance_of(user_id)
        screen = {
            "title": f"Grant {data.amount.strip() or '?'} credits to {user_id}?",
            "lines": [("User", user_id), ("Balance now", balance), ("Balance after", balance + (amount or 0))],
            "action": f"{page}/grant",
            "cancel": page,
            "button": f"Grant {amount or ''} credits",
            "reason": data.reason,
            "amount": data.amount,
        }
        if data.confirm != "yes":
            return confirm_page(400 if problems else 200, errors=problems, **screen)
        problems += reason_problems(data.reason)
        if problems or amount is None:
            return confirm_page(400, errors=problems, **screen)
        try:
            out = await admin.grant_credits(principal.user_id, user_id, amount, data.reason.strip())
        except AppError as exc:
            return confirm_page(exc.status_code, errors=error_messages(exc), **screen)
        return Redirect(done_url(page, "grant", out.action_id), status_code=303)

    @post("/queue/dead-letters/{dead_id:str}/requeue", status_code=200)
    async def requeue(
        self,
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        dead_id: FromPath[str],
        data: Annotated[ReasonForm, Form],
    ) -> Template | Redirect:
        return await self._dead_letter("requeue", principal, stream, dead_id, data)

    @post("/queue/dead-letters/{dead_id:str}/discard", status_code=200)
    async def discard(
        self,
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        dead_id: FromPath[str],
        data: Annotated[ReasonForm, Form],
    ) -> Template | Redirect:
        return await self._dead_letter("discard", principal, stream, dead_id, data)

    async def _dead_letter(
        self, action: str, principal: Principal, stream: JobStream, dead_id: str, data: ReasonForm
    ) -> Template | Redirect:
        letter = await queue.dead_letter(stream, dead_id)
        requeue = action == "requeue"
        screen = {
            "title": f"{'Requeue' if requeue else 'Discard'} dead letter {dead_id}?",
            "lines": [
                ("Reason it died", letter.reason),
                ("Job", letter.job_id or "(unreadable)"),
                ("User", letter.user_id or "-"),
                ("Model", letter.model or "-"),
            ],
            "warning": "The job runs again under its own id, as if just submitted: a new generation is charged "
            "once (one that was already charged is not charged again). Nobody waits for it; its owner sees it "
            "at GET /video-gen/jobs/{id}."
            if requeue
            else "The dead letter is deleted for good; the job never runs.",
            "action": f"/console/queue/dead-letters/{dead_id}/{action}",
            "cancel": "/console/queue",
            "button": "Requeue the job" if requeue else "Discard it",
            "reason": data.reason,
        }
        run = queue.requeue if requeue else queue.discard
        return await two_step(
            screen,
            data,
            lambda reason: run(principal.user_id, dead_id, reason, stream=stream),
            done="/console/queue",
            kind=action,
        )
