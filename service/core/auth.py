"""Bearer-token authentication: Litestar's JWT auth, verifying with our ``TokenVerifier``.

Litestar's ``JWTAuth`` provides the middleware, the path exclusions and the OpenAPI security
scheme; its token check is replaced by ``TokenVerifier`` (``tokens.py``), which knows a customer's
identity provider (JWKS, PEM, issuer, audience, leeway) as well as ``JWT_SECRET``, and maps the
claims to a ``Principal`` (``claims.py``). ``make_token`` mints the HS256 tokens of the embedded
stack, the CLI and the tests: ``sub`` the user id, ``roles`` a list, ``exp`` required.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AuthenticationResult, DefineMiddleware
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, JWTCookieAuth, Token
from litestar.security.jwt.middleware import JWTCookieAuthenticationMiddleware

from service.core.claims import Principal
from service.core.errors import AppError
from service.core.tokens import TokenVerifier

ALGORITHM = "HS256"
MAX_AUTHORIZATION_BYTES = 8192  # a JWT is a few hundred bytes to a few kB; a larger header is abuse (431)
# Paths served without a token: health, metrics, the schema, and signed download links.
PUBLIC_PATHS = ["^/health", "^/metrics", "^/schema", "^/docs-assets/", "^/video-gen/files/"]


async def _never(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    # Required by JWTAuth; the middleware below builds the principal itself.
    raise NotAuthorizedException("Invalid token")


class _Verifying:
    verifier: TokenVerifier

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        principal, claims = await self.verifier.principal(encoded_token)  # verified once: kept a while
        return AuthenticationResult(user=principal, auth=claims)


class BearerMiddleware(_Verifying, JWTAuthenticationMiddleware):
    """Only ``Authorization: Bearer <token>`` authenticates; another scheme is a 401, a header
    over ``MAX_AUTHORIZATION_BYTES`` a 431."""

    def __init__(self, *args: Any, verifier: TokenVerifier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verifier = verifier

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get(self.auth_header)
        if not header:
            raise NotAuthorizedException("No JWT token found in request header")
        if len(header) > MAX_AUTHORIZATION_BYTES:
            raise AppError("Request Header Fields Too Large: Authorization", 431)
        token = bearer_token(header)
        if token is None:
            raise NotAuthorizedException("Invalid authorization header: expected 'Bearer <token>'")
        return await self.authenticate_token(encoded_token=token, connection=connection)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_AUTHORIZATION_BYTES:
        return None
    return token


class CookieMiddleware(_Verifying, JWTCookieAuthenticationMiddleware):
    def __init__(self, *args: Any, verifier: TokenVerifier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verifier = verifier


@dataclass
class BearerAuth(JWTAuth[Principal, Token]):
    verifier: TokenVerifier | None = None
    authentication_middleware_class: type[JWTAuthenticationMiddleware] = BearerMiddleware

    @property
    def middleware(self) -> DefineMiddleware:
        define = super().middleware
        define.kwargs["verifier"] = self.verifier
        return define


@dataclass
class CookieAuth(JWTCookieAuth[Principal, Token]):
    verifier: TokenVerifier | None = None
    authentication_middleware_class: type[JWTCookieAuthenticationMiddleware] = CookieMiddleware

    @property
    def middleware(self) -> DefineMiddleware:
        define = super().middleware
        define.kwargs["verifier"] = self.verifier
        return define


def jwt_auth(verifier: TokenVerifier) -> BearerAuth:
    """The API's bearer-token auth (every path but ``PUBLIC_PATHS``)."""
    return BearerAuth(
        token_secret=verifier.secret,
        retrieve_user_handler=_never,
        exclude=PUBLIC_PATHS,
        verifier=verifier,
    )


def cookie_auth(verifier: TokenVerifier, **options: Any) -> CookieAuth:
    """The same check on a token kept in a cookie (the operator console's session)."""
    return CookieAuth(token_secret=verifier.secret, retrieve_user_handler=_never, verifier=verifier, **options)


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Controller guard: the caller's token carries the admin role (``JWT_ADMIN_ROLE``).

    Requests the JWT middleware lets through unauthenticated (``OPTIONS``) have no user: a 401."""
    if "user" not in connection.scope:
        raise NotAuthorizedException("No JWT token found in request header")
    if not connection.user.is_admin:
        raise PermissionDeniedException("Forbidden resource")


def make_token(
    secret: str, user_id: str, *, roles: list[str] | None = None, ttl: timedelta = timedelta(hours=1), **claims: Any
) -> str:
    """Sign a token the API accepts (demo, CLI and tests)."""
    payload = {"sub": user_id, "roles": roles or [], "exp": datetime.now(UTC) + ttl, "iat": datetime.now(UTC), **claims}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


__all__ = ["Principal", "TokenVerifier", "admin_guard", "cookie_auth", "jwt_auth", "make_token"]
