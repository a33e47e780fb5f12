"""The operator console at ``/console``: server-rendered pages (Jinja, through Litestar's
templates) for generations, accounts, the queue, the audit trail and the ledger check, for users
with the ``admin`` role. Its assets are served by the service itself (no build step, no CDN).

``create_app`` adds ``console_routes(settings, verifier)`` to its handlers and ``console_templates()`` as
its template config; nothing else of the app changes. The console's routes are excluded from the
API's bearer-token middleware and authenticate with their own session cookie (``auth.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Router
from litestar.datastructures import ResponseHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from service.console import formatting
from service.console.actions import ConsoleActions
from service.console.auth import ConsoleAuth
from service.console.endpoints import ConsolePages
from service.console.operations import OperationsPages
from service.console.signin import EXCEPTION_HANDLERS, sign_in_controller
from service.core.settings import Settings
from service.core.tokens import TokenVerifier

HERE = Path(__file__).parent
# Scripts and styles only from the service; media may come from presigned S3 links.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' http: https:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CSP),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]


def console_routes(settings: Settings, verifier: TokenVerifier) -> list[Any]:
    """The console's pages under ``/console`` and its assets under ``/console/static``; sessions
    are checked by the API's ``verifier``."""
    auth = ConsoleAuth(settings.jwt_secret, verifier)
    pages = Router(
        path="/",
        route_handlers=[ConsolePages, OperationsPages, ConsoleActions, sign_in_controller(auth)],
        middleware=auth.middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        response_headers=HEADERS,
        opt={"exclude_from_auth": True},  # the API's bearer middleware: the console has its own
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/console/static",
        directories=[HERE / "static"],
        opt={"exclude_from_auth": True},
        include_in_schema=False,
        name="console-static",
    )
    return [pages, static]


def console_templates() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=formatting.install)


__all__ = ["console_routes", "console_templates"]
