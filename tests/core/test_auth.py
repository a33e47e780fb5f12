"""The API with a customer's identity provider, over real HTTP on the whole stack: tokens signed by
keys published at a JWKS URL on loopback (generated here, RSA and EC), the spec's 401 for every
bad token, each provider's claim shape, the admin role, key rotation, readiness while the provider
is down, and the operator console signing in with a provider's token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.embedded import embedded_stack
from tests.conftest import REDIS_URL, Api, make_settings
from tests.console.conftest import CSRF
from tests.factories import TestModels, image_request, make_token
from tests.fakes.identity_provider import AUDIENCE, ISSUER, IdentityProvider, claims, refused_tokens

UNAUTHORIZED = {"statusCode", "message", "error"}


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


@asynccontextmanager
async def provider_api(
    idp: IdentityProvider, sqlite_url: str, redis_prefix: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Api]:
    values: dict[str, Any] = dict(jwt_jwks_url=idp.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    settings = make_settings(sqlite_url, redis_prefix, tmp_path, **{**values, **overrides})
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            yield Api(stack, client)


async def _queued(api: Api) -> int:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = Keys(api.settings.redis_key_prefix)  # every model's jobs stream
        return sum([await client.xlen(keys.queue(m.decode())) for m in await client.smembers(keys.queues)])
    finally:
        await client.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _user(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/video-gen/credits", headers=bearer(token))


async def test_provider_tokens_are_accepted_and_bad_ones_get_the_spec_401(
    idp: IdentityProvider, sqlite_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with provider_api(idp, sqlite_url, redis_prefix, tmp_path) as api:
        for key in idp.keys:  # RS256 and ES256
            r = await _user(api, key.sign(claims("auth0|alice")))
            assert r.status_code == 200 and r.json()["userId"] == "auth0|alice", r.text
        for case, (token, reason) in refused_tokens(idp, api.settings.jwt_secret).items():
            r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=bearer(token))
            assert r.status_code == 401, case
            assert set(r.json()) == UNAUTHORIZED and r.json()["error"] == "Unauthorized", case
            assert reason in r.json()["message"], (case, r.json())
        assert await _queued(api) == 0
        assert idp.fetches == 2  # the start, and one refetch for the unknown kid
        # The embedded stack's own HS256 tokens are not accepted by a provider-only API.
        assert (await _user(api, make_token(api.settings.jwt_secret, "u1"))).status_code == 401


SHAPES = [
    # (JWT_USER_CLAIM, JWT_ROLES_CLAIM, JWT_ADMIN_ROLE, an admin's claims, a user's claims)
    ("sub", "roles", "admin", {"roles": ["admin"]}, {"roles": ["editor"]}),
    ("sub", "https://example.com/roles", "admin", {"https://example.com/roles": ["admin"]}, {"roles": ["admin"]}),
    (
        "sub",
        "realm_access.roles",
        "video-admin",
        {"realm_access": {"roles": ["offline_access", "video-admin"]}},
        {"realm_access": {"roles": ["admin"]}},
    ),
    ("cognito:username", "cognito:groups", "admins", {"cognito:groups": ["admins"]}, {"cognito:groups": ["users"]}),
    ("sub", "scope", "video:admin", {"scope": "openid video:admin"}, {"scope": "openid video:generate"}),
]


@pytest.mark.parametrize(("user_claim", "roles_claim", "admin_role", "admin", "user"), SHAPES)
async def test_each_claim_shape_maps_the_user_and_the_admin_role(
    idp: IdentityProvider,
    sqlite_url: str,
    redis_prefix: str,
    tmp_path: Path,
    user_claim: str,
    roles_claim: str,
    admin_role: str,
    admin: dict[str, Any],
    user: dict[str, Any],
) -> None:
    mapping = dict(jwt_user_claim=user_claim, jwt_roles_claim=roles_claim, jwt_admin_role=admin_role)
    async with provider_api(idp, sqlite_url, redis_prefix, tmp_path, **mapping) as api:

        def token(uid: str, extra: dict[str, Any]) -> str:
            ids = {"sub": uid} if user_claim == "sub" else {"sub": "opaque-id", user_claim: uid}
            return idp.rsa.sign(claims(**ids, **extra))

        assert (await _user(api, token("carol", user))).json()["userId"] == "carol"
        verify = "/admin/ledger/verify"
        assert (await api.client.get(verify, headers=bearer(token("ann", admin)))).status_code == 200
        refused = await api.client.get(verify, headers=bearer(token("carol", user)))
        assert refused.status_code == 403 and refused.json()["message"] == "Forbidden resource"


async def test_a_rotated_key_is_fetched_once(
    idp: IdentityProvider, sqlite_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with provider_api(idp, sqlite_url, redis_prefix, tmp_path) as api:
        assert (await _user(api, idp.rsa.sign(claims()))).status_code == 200
        new = idp.rotate(retire=True)
        answers = await asyncio.gather(*(_user(api, new.sign(claims(f"u{i}"))) for i in range(8)))
        assert [r.status_code for r in answers] == [200] * 8
        assert idp.fetches == 2


async def test_unknown_kid_flood_costs_one_fetch(
    idp: IdentityProvider, sqlite_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with provider_api(idp, sqlite_url, redis_prefix, tmp_path, jwt_jwks_cooldown_seconds=600) as api:
        forged = [idp.rsa.sign(claims(), kid=f"random-{i}") for i in range(60)]
        answers = await asyncio.gather(*(_user(api, t) for t in forged))
        assert {r.status_code for r in answers} == {401}
        assert idp.fetches == 2
        assert (await _user(api, idp.rsa.sign(claims()))).status_code == 200


async def test_not_ready_until_the_provider_answers(
    idp: IdentityProvider, sqlite_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    idp.down = True
    async with provider_api(idp, sqlite_url, redis_prefix, tmp_path, jwt_jwks_cooldown_seconds=0.1) as api:
        ready = await api.client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["keys"] == "unavailable"  # why: in the log only
        r = await _user(api, idp.rsa.sign(claims()))
        assert r.status_code == 401 and "not loaded yet" in r.json()["message"]
        idp.down = False
        for _ in range(100):
            ready = await api.client.get("/health/ready")
            if ready.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert ready.status_code == 200 and ready.json()["keys"] == "ok"
        assert (await _user(api, idp.rsa.sign(claims()))).status_code == 200
        idp.down = True  # down again: the keys we have keep working
        verifier = api.stack.server.config.app.state["verifier"]
        assert not await verifier.jwks.refresh()
        assert (await _user(api, idp.rsa.sign(claims()))).status_code == 200
        assert (await api.client.get("/health/ready")).status_code == 200


async def test_the_console_signs_in_with_a_provider_token(
    idp: IdentityProvider, sqlite_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with provider_api(idp, sqlite_url, redis_prefix, tmp_path) as api:
        page = await api.client.get("/console/sign-in")
        csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        token = idp.keys[1].sign(claims("ann", roles=["admin"]))
        r = await api.client.post("/console/sign-in", data={"token": token, "_csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/console/generations"
        assert (await api.client.get("/console/generations")).status_code == 200
        bad = idp.rsa.sign(claims("ann", roles=["admin"], iss="https://evil.example/"))
        r = await api.client.post("/console/sign-in", data={"token": bad, "_csrf_token": csrf})
        assert r.status_code == 401 and "Invalid issuer" in r.text
