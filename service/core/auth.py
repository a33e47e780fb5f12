"""JWT authentication (Litestar's JWTAuth on pyjwt, HS256).

``sub`` is the user id, ``roles`` a list in which ``admin`` marks an admin; ``sub`` and ``exp`` are
required, ``iat`` is not, and ``exp``/``nbf``/``iat`` get ``LEEWAY_SECONDS`` for clock skew. Only
the ``Bearer`` scheme authenticates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from service.core.errors import AppError

ALGORITHM = "HS256"
LEEWAY_SECONDS = 10  # clock skew between the token's issuer and us
MAX_AUTHORIZATION_BYTES = 8192  # a JWT is a few hundred bytes; a larger header is abuse (431)
# Paths served without a token: health, metrics, the schema, and signed download links.
PUBLIC_PATHS = ["^/health", "^/metrics", "^/schema", "^/video-gen/files/"]


class Principal(msgspec.Struct, frozen=True):
    user_id: str
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


MAX_USER_ID_CHARS = 255  # the ledger's and the records' user id columns


async def _principal(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    if len(token.sub) > MAX_USER_ID_CHARS or "\x00" in token.sub:  # nothing could store or key it
        raise NotAuthorizedException(f"Invalid token: sub must be at most {MAX_USER_ID_CHARS} characters, without NUL")
    roles = token.extras.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise NotAuthorizedException("Invalid token: roles must be a list of strings")
    return Principal(user_id=token.sub, roles=tuple(roles))


class SkewTolerantToken(Token):
    """Litestar's Token, with pyjwt's leeway and without requiring ``iat``.

    pyjwt checks ``exp``, ``nbf`` and ``iat`` with ``LEEWAY_SECONDS``; Litestar's Token then
    re-checks ``exp`` and ``iat`` against the exact clock and needs an ``iat``, so a token pyjwt
    accepted within the leeway gets values it accepts too.
    """

    @classmethod
    def decode_payload(
        cls,
        encoded_token: str,
        secret: str,
        algorithms: list[str],
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        options: Any = None,
    ) -> Any:
        payload = jwt.decode(
            encoded_token,
            key=secret,
            algorithms=algorithms,
            issuer=issuer,  # type: ignore[arg-type]
            audience=audience,
            options=options,
            leeway=LEEWAY_SECONDS,
        )
        now = time.time()
        if isinstance(payload.get("exp"), (int, float)) and payload["exp"] < now + 1:
            payload["exp"] = now + 1  # expired less than the leeway ago: still valid for this request
        if not isinstance(payload.get("iat"), (int, float)) or payload["iat"] > now:
            payload["iat"] = now
        return payload


class BearerJWTMiddleware(JWTAuthenticationMiddleware):
    """Only ``Authorization: Bearer <token>`` authenticates; any other scheme is a 401."""

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
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def verified_subject(header: str | None, secret: str) -> str | None:
    """The ``sub`` of a Bearer token that verifies, else None (the rate limiter's identity)."""
    token = bearer_token(header)
    if token is None or len(token) > MAX_AUTHORIZATION_BYTES:
        return None
    try:
        payload = jwt.decode(
            token, key=secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS, options={"require": ["exp", "sub"]}
        )
    except jwt.InvalidTokenError:
        return None
    sub = payload.get("sub")
    return sub if isinstance(sub, str) and sub else None


def jwt_auth(secret: str) -> JWTAuth[Principal]:
    return JWTAuth[Principal](
        token_secret=secret,
        algorithm=ALGORITHM,
        retrieve_user_handler=_principal,
        exclude=PUBLIC_PATHS,
        require_claims=["exp", "sub"],
        verify_expiry=True,
        token_cls=SkewTolerantToken,
        authentication_middleware_class=BearerJWTMiddleware,
    )


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Controller guard: the caller's token carries the ``admin`` role.

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
