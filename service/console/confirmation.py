"""How every console action is confirmed: a first POST that changes nothing and answers a page
saying exactly what will happen, then ``confirm=yes`` with a reason, which acts and redirects (303)
so a reload never repeats it. Problems are shown on the confirmation page with the admin API's words
and status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from service.console.forms import ReasonForm, done_url, reason_problems
from service.core.errors import AppError

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def confirm_page(status: int = 200, *, errors: list[str] | None = None, **context: Any) -> Template:
    """The confirmation page: ``context`` says what will happen, ``errors`` what stops it."""
    return Template("confirm.html", context={"errors": errors or [], **context}, status_code=status)


def error_messages(exc: AppError) -> list[str]:
    """An admin service's refusal as the lines the confirmation page lists."""
    return exc.message if isinstance(exc.message, list) else [exc.message]


async def two_step(
    screen: dict[str, Any], data: ReasonForm, act: Callable[[str], Awaitable[Any]], *, done: str, kind: str
) -> Template | Redirect:
    """The confirmation page until ``confirm=yes`` comes with a reason; then ``act(reason)`` (an
    admin service, which returns its audited action) and a 303 to ``done``, or its error on the page."""
    if data.confirm != "yes":
        return confirm_page(**screen)
    if problems := reason_problems(data.reason):
        return confirm_page(400, errors=problems, **screen)
    try:
        out = await act(data.reason.strip())
    except AppError as exc:
        return confirm_page(exc.status_code, errors=error_messages(exc), **screen)
    return Redirect(done_url(done, kind, out.action_id), status_code=303)
