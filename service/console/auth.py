"""Sign-in for the console: the API's own tokens, kept in a session cookie.

An admin pastes a token (or opens the link ``video-gen serve`` prints, whose ``#token=`` fragment
the page posts for them: a fragment never reaches a server log). The token is checked exactly as
the API checks it (the same ``TokenVerifier``: keys, issuer, audience, claim mapping) and, for an
admin, stored as an HttpOnly, ``SameSite=Strict`` cookie limited to ``/console`` that expires
with the token. Nothing else is stored: signing out drops the cookie, and a token's expiry ends
the session.

Every state-changing request (sign-in included) is checked against CSRF by Litestar's
``CSRFMiddleware`` (a double-submit token: a cookie and the form's ``_csrf_token`` field).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware

from service.core.auth import CookieAuth, Principal, TokenVerifier, cookie_auth

PATH = "/console"
SESSION_COOKIE = "vg_console"
CSRF_COOKIE = "vg_console_csrf"
PUBLIC = "console_public"  # route opt: served without a session (sign-in, sign-out)


def _cookie_auth(verifier: TokenVerifier) -> CookieAuth:
    return cookie_auth(verifier, key=SESSION_COOKIE, path=PATH, samesite="strict", exclude_opt_key=PUBLIC)


class ConsoleAuth:
    """The console's session cookie (checked by the API's ``TokenVerifier``) and CSRF protection
    (keyed from ``JWT_SECRET``)."""

    def __init__(self, secret: str, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self.cookie_auth = _cookie_auth(verifier)
        csrf_secret = hmac.new(secret.encode(), b"video-gen console csrf", hashlib.sha256).hexdigest()
        self.csrf = CSRFConfig(
            secret=csrf_secret,
            cookie_name=CSRF_COOKIE,
            cookie_path=PATH,
            cookie_samesite="strict",
            cookie_httponly=True,
        )

    @property
    def middleware(self) -> list[DefineMiddleware]:
        """CSRF first (a forged form is refused before anything reads it), then the session."""
        return [DefineMiddleware(CSRFMiddleware, config=self.csrf), self.cookie_auth.middleware]

    async def principal(self, token: str, request: Request[Any, Any, Any]) -> tuple[Principal, int]:
        """The principal a pasted token names and its expiry; ``NotAuthorizedException`` when the
        API would refuse it."""
        principal, claims = await self.verifier.principal(token.strip())
        return principal, int(claims["exp"])

    def session_cookie(self, token: str, expires: int, *, secure: bool) -> Cookie:
        return Cookie(
            key=SESSION_COOKIE,
            value=token.strip(),
            path=PATH,
            max_age=max(int(expires - time.time()), 0),
            httponly=True,
            samesite="strict",
            secure=secure,
        )

    def clear_cookie(self, *, secure: bool) -> Cookie:
        return Cookie(
            key=SESSION_COOKIE, value="", path=PATH, max_age=0, httponly=True, samesite="strict", secure=secure
        )
