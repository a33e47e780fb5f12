"""Claim mapping: each provider's shape of user id and roles."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException

from service.core.claims import ClaimMapping, Principal, lookup

SHAPES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("sub", "roles", {"sub": "u1", "roles": ["admin", "editor"]}, ("admin", "editor")),
    ("sub", "https://example.com/roles", {"sub": "auth0|u1", "https://example.com/roles": ["admin"]}, ("admin",)),
    (
        "sub",
        "realm_access.roles",
        {"sub": "u1", "realm_access": {"roles": ["admin", "offline_access"]}},
        ("admin", "offline_access"),
    ),
    (
        "cognito:username",
        "cognito:groups",
        {"sub": "x", "cognito:username": "u1", "cognito:groups": ["admin"]},
        ("admin",),
    ),
    ("sub", "scope", {"sub": "u1", "scope": "openid profile admin"}, ("openid", "profile", "admin")),
    ("user_id", "roles", {"sub": "x", "user_id": "u1"}, ()),
]


@pytest.mark.parametrize(("user", "roles", "claims", "expected"), SHAPES)
def test_each_shape_maps_to_the_user_and_roles(
    user: str, roles: str, claims: dict[str, Any], expected: tuple[str, ...]
) -> None:
    principal = ClaimMapping(user=user, roles=roles).principal(claims)
    assert principal.user_id in {"u1", "auth0|u1"} and principal.roles == expected


def test_a_dotted_path_reaches_into_a_namespaced_object() -> None:
    claims = {"https://example.com/app": {"roles": ["admin"]}, "a": {"b.c": {"d": 1}}}
    assert lookup(claims, "https://example.com/app.roles") == ["admin"]
    assert lookup(claims, "a.b.c.d") == 1


def test_the_admin_role_is_configurable() -> None:
    mapping = ClaimMapping(roles="groups", admin_role="video-admins")
    assert mapping.principal({"sub": "u1", "groups": ["video-admins"]}).is_admin
    assert not mapping.principal({"sub": "u1", "groups": ["admin"]}).is_admin
    assert Principal("u1", ("admin",)).is_admin  # the default


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": "  "}, {"sub": 42}, {"sub": ["u1"]}, {"sub": None}])
def test_a_token_without_a_usable_user_id_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(NotAuthorizedException, match="no user id in claim 'sub'"):
        ClaimMapping().principal(claims)


@pytest.mark.parametrize("roles", [42, {"admin": True}, ["admin", 1]])
def test_malformed_roles_are_refused(roles: Any) -> None:
    with pytest.raises(NotAuthorizedException, match="roles must be a list of strings"):
        ClaimMapping().principal({"sub": "u1", "roles": roles})


def test_missing_or_null_roles_are_none() -> None:
    assert ClaimMapping().principal({"sub": "u1"}).roles == ()
    assert ClaimMapping().principal({"sub": "u1", "roles": None}).roles == ()
    assert ClaimMapping(roles="realm_access.roles").principal({"sub": "u1", "realm_access": {}}).roles == ()
