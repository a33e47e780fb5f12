"""The console's pages of running the service (``GET /console/...``, role ``admin``): the queue
and its dead letters, the audit trail of every ledger entry and operator action, the ledger check.

Like the customers' pages (``endpoints.py``), each reads through the admin API's own services.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from service.admin import queue
from service.admin import service as admin
from service.console.forms import Limit, Text, filter_params, local_time, notice, page_url
from service.core.auth import admin_guard
from service.jobs.stream import JobStream
from service.ledger.postings import KINDS
from service.ledger.schemas import EntryFilter

AUDIT_KINDS = [*KINDS, "requeue", "discard"]


class OperationsPages(Controller):
    path = "/console"
    guards = [admin_guard]

    @get("/queue")
    async def queue_page(self, stream: NamedDependency[JobStream], done: Text = None, cursor: Text = None) -> Template:
        state = await queue.queue(stream, limit=50)
        dead = await queue.dead_letters(stream, limit=20, cursor=cursor)
        return Template(
            "queue.html",
            context={
                "state": state,
                "dead": dead,
                "notice": notice(done),
                "next_url": dead.next_cursor and page_url("/console/queue", {}, cursor=dead.next_cursor),
                "first_url": cursor and "/console/queue",
            },
        )

    @get("/audit")
    async def audit(
        self,
        request: Request[Any, Any, Any],
        user: Text = None,
        kind: Text = None,
        generation: Text = None,
        since: Text = None,
        until: Text = None,
        tz: Text = None,
        cursor: Text = None,
        limit: Limit = 50,
    ) -> Template:
        filters = EntryFilter(
            user_id=user or None,
            kind=kind or None,
            generation_id=generation or None,
            since=local_time(since, tz),
            until=local_time(until, tz),
        )
        trail = await admin.audit(filters, limit=limit, cursor=cursor)
        params = filter_params(request)
        return Template(
            "audit.html",
            context={
                "trail": trail,
                "filters": params,
                "kinds": AUDIT_KINDS,
                "next_url": trail.next_cursor and page_url("/console/audit", params, cursor=trail.next_cursor),
                "first_url": cursor and page_url("/console/audit", params),
            },
        )

    @get("/ledger")
    async def ledger(self, run: Text = None) -> Template:
        report = await admin.verify() if run else None
        return Template("ledger.html", context={"report": report})
