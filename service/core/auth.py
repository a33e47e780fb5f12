"""JWT authentication (Litestar's JWTAuth on pyjwt, HS256).

``sub`` is the user id, ``roles`` a list in which ``admin`` marks an admin, ``exp`` is required.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

ALGORITHM = "HS256"
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


def jwt_auth(secret: str) -> JWTAuth[Principal]:
    return JWTAuth[Principal](
        token_secret=secret,
        algorithm=ALGORITHM,
        retrieve_user_handler=_principal,
        exclude=PUBLIC_PATHS,
        require_claims=["exp", "sub"],
        verify_expiry=True,
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
