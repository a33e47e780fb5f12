"""Signing in and out of the console, and what a visitor without a session or the admin role
sees: the sign-in page, or a plain refusal (HTTP 403) that shows no data.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from service.console.auth import PUBLIC, ConsoleAuth
from service.core.errors import AppError

HOME = "/console/generations"


class SignInForm(msgspec.Struct, kw_only=True):
    token: str = ""
    next: str = ""


def _next(target: str | None) -> str:
    # Only a console page: never an open redirect to another site.
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def sign_in_controller(auth: ConsoleAuth) -> type[Controller]:
    class SignIn(Controller):
        path = "/console"
        opt = {PUBLIC: True}

        @get("/sign-in")
        async def form(self, next: FromQuery[str | None] = None) -> Template:
            return Template("signin.html", context={"next": _next(next), "error": None})

        @post("/sign-in", status_code=303)
        async def sign_in(
            self,
            request: Request[Any, Any, Any],
            data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        ) -> Template | Redirect:
            try:
                principal, expires = await auth.principal(data.token, request)
            except NotAuthorizedException as exc:
                error = "That token was not accepted: " + (exc.detail or "invalid token")
                return Template("signin.html", context={"next": _next(data.next), "error": error}, status_code=401)
            if not principal.is_admin:
                return refused(principal.user_id)
            response = Redirect(_next(data.next), status_code=303)
            response.set_cookie(auth.session_cookie(data.token, expires, secure=_secure(request)))
            return response

        @post("/sign-out", status_code=303)
        async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
            response = Redirect("/console/sign-in", status_code=303)
            response.set_cookie(auth.clear_cookie(secure=_secure(request)))
            return response

    return SignIn


def refused(user_id: str | None, message: str | None = None) -> Template:
    return Template("refused.html", context={"user_id": user_id, "message": message}, status_code=403)


def _not_signed_in(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    back = f"?{urlencode({'next': request.url.path})}" if request.method == "GET" else ""
    return Redirect(f"/console/sign-in{back}", status_code=303)


def _refused(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    user = request.scope.get("user")
    csrf = "CSRF" in (exc.detail or "")
    message = "The form was not sent from this console (its CSRF token is missing or wrong)." if csrf else None
    return refused(getattr(user, "user_id", None), message)


def _error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status = exc.status_code if isinstance(exc, (AppError, HTTPException)) else 500
    message = exc.message if isinstance(exc, AppError) else getattr(exc, "detail", str(exc))
    messages = message if isinstance(message, list) else [message]
    return Template("error.html", context={"status": status, "messages": messages}, status_code=status)


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    NotAuthorizedException: _not_signed_in,
    PermissionDeniedException: _refused,
    AppError: _error,
    HTTPException: _error,
}
