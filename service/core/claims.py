"""Who a verified token names: the user id and roles, read from configurable claims.

Providers put them in different places, so ``JWT_USER_CLAIM`` and ``JWT_ROLES_CLAIM`` name a
claim exactly (``cognito:groups``, ``https://example.com/roles``) or by a dotted path into nested
objects (``realm_access.roles``). Roles may be a list of strings or one space-separated string (an
OAuth ``scope``). ``JWT_ADMIN_ROLE`` is the role that makes an admin.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.exceptions import NotAuthorizedException

_MISSING = object()
MAX_USER_ID_CHARS = 255  # the ledger's and the records' user id columns


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller."""

    user_id: str
    roles: tuple[str, ...] = ()
    admin_role: str = "admin"

    @property
    def is_admin(self) -> bool:
        return self.admin_role in self.roles


def lookup(claims: Any, path: str) -> Any:
    """The claim at ``path``: the exact name first (namespaced names hold dots and colons), then
    each split at a dot into an object name and the rest of the path."""
    if not isinstance(claims, dict):
        return _MISSING
    if path in claims:
        return claims[path]
    start = 0
    while (dot := path.find(".", start)) != -1:
        head, rest = path[:dot], path[dot + 1 :]
        if head in claims:
            found = lookup(claims[head], rest)
            if found is not _MISSING:
                return found
        start = dot + 1
    return _MISSING


class ClaimMapping(msgspec.Struct, frozen=True, kw_only=True):
    user: str = "sub"
    roles: str = "roles"
    admin_role: str = "admin"

    def principal(self, claims: dict[str, Any]) -> Principal:
        """The caller; a token without a usable user id or with malformed roles is a 401."""
        user_id = lookup(claims, self.user)
        if not isinstance(user_id, str) or not user_id.strip():
            raise NotAuthorizedException(f"Invalid token: no user id in claim {self.user!r}")
        if len(user_id) > MAX_USER_ID_CHARS or "\x00" in user_id:  # nothing could store or key it
            raise NotAuthorizedException(
                f"Invalid token: {self.user} must be at most {MAX_USER_ID_CHARS} characters, without NUL"
            )
        return Principal(user_id=user_id, roles=self._roles(lookup(claims, self.roles)), admin_role=self.admin_role)

    def _roles(self, value: Any) -> tuple[str, ...]:
        if value is _MISSING or value is None:
            return ()
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list) and all(isinstance(r, str) for r in value):
            return tuple(value)
        raise NotAuthorizedException(
            f"Invalid token: {self.roles} must be a list of strings or a space-separated string"
        )
