"""The console's pages of generations and customers (``GET /console/...``, role ``admin``):
generations, one generation and its thumbnail, a user's account.

Each page reads through the same service functions as the admin API and the job endpoint; the
queue, the audit trail and the ledger check are in ``operations.py``, the state-changing forms in
``actions.py``. Lists are cursor-paginated and keep their filters.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from models_registry.registry import ModelRegistry
from service.admin import service as admin
from service.console import thumbnails
from service.console.forms import Limit, Text, filter_params, local_time, notice, page_url
from service.core.auth import Principal, admin_guard
from service.core.errors import NotFound
from service.core.settings import Settings
from service.generations.schemas import GenerationFilter
from service.generations.status import GenerationStatus
from service.generations.views import describe_job, generation_of, generation_out, list_generations
from service.jobs.stream import JobStream
from service.ledger.schemas import EntryFilter
from service.ledger.service import credits_of
from service.storage.base import Storage
from service.webhooks.queue import WebhookQueue


class ConsolePages(Controller):
    path = "/console"
    guards = [admin_guard]

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/console/generations")

    @get("/generations")
    async def generations(
        self,
        request: Request[Any, Any, Any],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        registry: NamedDependency[ModelRegistry],
        user: Text = None,
        project: Text = None,
        model: Text = None,
        status: Text = None,
        since: Text = None,
        until: Text = None,
        tz: Text = None,
        cursor: Text = None,
        limit: Limit = 20,
    ) -> Template:
        filters = GenerationFilter(
            user_id=user or None,
            project_id=project or None,
            model=model or None,
            status=GenerationStatus(status) if status in set(GenerationStatus) else None,
            since=local_time(since, tz),
            until=local_time(until, tz),
        )
        page = await list_generations(
            filters, limit=limit, cursor=cursor, storage=storage, download_seconds=settings.download_url_seconds
        )
        params = filter_params(request)
        return Template(
            "generations.html",
            context={
                "page": page,
                "filters": params,
                "models": registry.names(),
                "statuses": [str(s) for s in GenerationStatus],
                "next_url": page.next_cursor and page_url("/console/generations", params, cursor=page.next_cursor),
                "first_url": cursor and page_url("/console/generations", params),
            },
        )

    @get("/generations/{generation_id:str}")
    async def generation(
        self,
        principal: NamedDependency[Principal],
        stream: NamedDependency[JobStream],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        webhooks: NamedDependency[WebhookQueue],
        generation_id: FromPath[str],
        done: Text = None,
        cursor: Text = None,
    ) -> Template:
        record = await generation_of(generation_id)
        if record is None:
            raise NotFound(f"Generation {generation_id} not found")
        job = await describe_job(
            generation_id,
            principal,
            stream=stream,
            storage=storage,
            download_seconds=settings.download_url_seconds,
            webhooks=webhooks,
        )
        trail = await admin.audit(EntryFilter(generation_id=generation_id), limit=50, cursor=cursor)
        base = f"/console/generations/{generation_id}"
        return Template(
            "generation.html",
            context={
                "g": generation_out(record),
                "record": record,
                "job": job,
                "trail": trail,
                "notice": notice(done),
                "next_url": trail.next_cursor and page_url(base, {}, cursor=trail.next_cursor),
                "first_url": cursor and base,
            },
        )

    @get("/generations/{generation_id:str}/thumbnail")
    async def thumbnail(
        self, storage: NamedDependency[Storage], settings: NamedDependency[Settings], generation_id: FromPath[str]
    ) -> Response[bytes]:
        record = await generation_of(generation_id)
        if record is None:
            raise NotFound(f"Generation {generation_id} not found")
        image = await thumbnails.thumbnail(storage, record.source_key, max_bytes=settings.max_source_bytes)
        return Response(image, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    @get("/users")
    async def find_user(self, user: Text = None) -> Redirect | Template:
        if user and user.strip():
            return Redirect(f"/console/users/{user.strip()}")
        return Template("find_user.html")

    @get("/users/{user_id:str}")
    async def account(
        self,
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        user_id: FromPath[str],
        done: Text = None,
        cursor: Text = None,
        limit: Limit = 25,
    ) -> Template:
        credits = await credits_of(user_id, limit=limit, cursor=cursor)
        recent = await list_generations(
            GenerationFilter(user_id=user_id), limit=5, cursor=None, storage=storage, download_seconds=60
        )
        base = f"/console/users/{user_id}"
        return Template(
            "account.html",
            context={
                "credits": credits,
                "recent": recent.items,
                "notice": notice(done),
                "next_url": credits.next_cursor and page_url(base, {"limit": limit}, cursor=credits.next_cursor),
                "first_url": cursor and base,
            },
        )
