"""TokenVerifier: which tokens are accepted from a provider's JWKS, a PEM or JWT_SECRET, and the
settings that cannot work (refused at start with one line)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

from service.core.auth import make_token
from service.core.settings import Settings, SettingsError
from service.core.tokens import JWKS_DEFAULT, TokenVerifier
from tests.fakes.identity_provider import (
    AUDIENCE,
    ISSUER,
    IdentityProvider,
    SigningKey,
    claims,
    hs256_with,
    refused_tokens,
)

SECRET = "test-secret-at-least-32-bytes-long-0123"


def provider_settings(idp: IdentityProvider, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        jwt_secret=SECRET, jwt_jwks_url=idp.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_leeway_seconds=5
    )
    return Settings(**{**values, **overrides})


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
async def verifier(idp: IdentityProvider) -> TokenVerifier:
    v = TokenVerifier(provider_settings(idp))
    assert v.jwks is not None and await v.jwks.refresh()
    return v


async def test_rs256_and_es256_tokens_from_the_jwks_are_accepted(
    idp: IdentityProvider, verifier: TokenVerifier
) -> None:
    for key in idp.keys:
        principal, decoded = await verifier.principal(key.sign(claims("user-1", roles=["admin"])))
        assert principal.user_id == "user-1" and principal.is_admin and decoded["iss"] == ISSUER


async def test_every_bad_token_is_refused(idp: IdentityProvider, verifier: TokenVerifier) -> None:
    for case, (token, reason) in refused_tokens(idp, SECRET).items():
        try:
            await verifier.principal(token)
        except NotAuthorizedException as exc:
            assert exc.detail.startswith("Invalid token: ") and reason in exc.detail, (case, exc.detail)
        else:
            pytest.fail(f"accepted: {case}")


async def test_clock_skew_within_the_leeway_is_accepted(idp: IdentityProvider, verifier: TokenVerifier) -> None:
    now = datetime.now(UTC)
    skewed = claims(iat=now + timedelta(seconds=3), nbf=now + timedelta(seconds=3), exp=now - timedelta(seconds=2))
    assert (await verifier.principal(idp.rsa.sign(skewed)))[0].user_id == "user-1"


async def test_a_single_key_without_a_kid_verifies_tokens_that_name_none(idp: IdentityProvider) -> None:
    key = SigningKey.rsa()
    jwk = {k: v for k, v in key.jwk().items() if k != "kid"}
    idp.keys = [key]
    idp.jwks = lambda: {"keys": [jwk]}  # type: ignore[method-assign]
    v = TokenVerifier(provider_settings(idp))
    assert v.jwks is not None and await v.jwks.refresh()
    token = jwt.encode(claims("user-9"), key.private, algorithm="RS256")  # no kid in the header
    assert (await v.principal(token))[0].user_id == "user-9"
    with pytest.raises(NotAuthorizedException, match="Signature verification failed"):
        await v.principal(jwt.encode(claims("user-9"), SigningKey.rsa().private, algorithm="RS256"))


async def test_a_jwk_without_alg_verifies_its_whole_family(idp: IdentityProvider) -> None:
    key = SigningKey.rsa(alg="PS256")
    jwk = {k: v for k, v in key.jwk().items() if k != "alg"}
    idp.keys = [key]
    idp.jwks = lambda: {"keys": [jwk]}  # type: ignore[method-assign]
    v = TokenVerifier(provider_settings(idp))
    assert v.jwks is not None and await v.jwks.refresh()
    assert (await v.principal(key.sign(claims(), alg="PS256")))[0].user_id == "user-1"
    assert (await v.principal(key.sign(claims(), alg="RS256")))[0].user_id == "user-1"
    with pytest.raises(NotAuthorizedException):
        await v.principal(hs256_with(b"x", claims(), key.kid))


async def test_a_jwk_with_alg_verifies_only_that_one(idp: IdentityProvider, verifier: TokenVerifier) -> None:
    with pytest.raises(NotAuthorizedException, match="does not match"):
        await verifier.principal(idp.rsa.sign(claims(), alg="PS256"))


async def test_a_pem_public_key() -> None:
    key = SigningKey.rsa()
    v = TokenVerifier(Settings(jwt_public_key=key.public_pem(), jwt_issuer=ISSUER, jwt_audience=AUDIENCE))
    assert v.algorithms == ["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"] and v.ready
    assert (await v.principal(key.sign(claims(), kid="ignored")))[0].user_id == "user-1"
    for token in [
        hs256_with(key.public_pem().encode(), claims(), "k"),
        SigningKey.rsa().sign(claims()),
        jwt.encode(claims(), SECRET, algorithm="HS256"),
    ]:
        with pytest.raises(NotAuthorizedException):
            await v.principal(token)


def test_the_pem_may_be_a_file(tmp_path: Any) -> None:
    key = SigningKey.ec()
    (tmp_path / "idp.pem").write_text(key.public_pem())
    v = TokenVerifier(Settings(jwt_public_key=str(tmp_path / "idp.pem")))
    assert v.algorithms == ["ES256", "ES256K", "ES384", "ES512"]


async def test_hs256_with_jwt_secret_is_unchanged_without_a_provider() -> None:
    v = TokenVerifier(Settings(jwt_secret=SECRET))
    assert v.algorithms == ["HS256"] and v.jwks is None and v.ready
    principal, _ = await v.principal(make_token(SECRET, "u1", roles=["admin"]))
    assert principal.user_id == "u1" and principal.is_admin
    no_iat = jwt.encode({"sub": "u2", "exp": datetime.now(UTC) + timedelta(minutes=1)}, SECRET, algorithm="HS256")
    assert (await v.principal(no_iat))[0].user_id == "u2"  # iat is optional; exp and a user id are not


async def test_hs256_beside_a_provider_when_listed(idp: IdentityProvider) -> None:
    v = TokenVerifier(provider_settings(idp, jwt_algorithms="RS256,HS256", jwt_issuer="", jwt_audience=""))
    assert v.jwks is not None and await v.jwks.refresh()
    assert (await v.principal(make_token(SECRET, "u1")))[0].user_id == "u1"
    assert (await v.principal(idp.rsa.sign(claims())))[0].user_id == "user-1"
    with pytest.raises(NotAuthorizedException, match="'ES256' is not accepted"):
        await v.principal(idp.keys[1].sign(claims()))
    with pytest.raises(NotAuthorizedException):  # the public key is never an HMAC secret
        await v.principal(hs256_with(idp.rsa.public_pem().encode(), claims(), idp.rsa.kid))


def test_default_algorithms_with_a_provider_are_asymmetric(idp: IdentityProvider) -> None:
    assert TokenVerifier(provider_settings(idp)).algorithms == JWKS_DEFAULT
    assert not {"HS256", "HS384", "HS512", "none"} & set(JWKS_DEFAULT)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_algorithms": "RS256,none"}, "JWT_ALGORITHMS must not include none"),
        ({"jwt_algorithms": "RS256,XS999"}, "JWT_ALGORITHMS: unknown algorithm 'XS999'"),
        ({"jwt_algorithms": "RS256"}, "JWT_ALGORITHMS lists RS256 but neither JWT_JWKS_URL nor JWT_PUBLIC_KEY is set"),
        ({"jwt_algorithms": "HS256", "jwt_secret": ""}, "JWT_ALGORITHMS lists HS256 but JWT_SECRET is empty"),
        (
            {"jwt_public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"},
            "JWT_PUBLIC_KEY must be a PEM",
        ),
        ({"jwt_public_key": "/nonexistent/idp.pem"}, "JWT_PUBLIC_KEY must be a PEM or a readable file"),
        ({"jwt_jwks_url": "http://idp.example/jwks"}, "JWT_JWKS_URL must be an https:// URL"),
        ({"jwt_secret": ""}, "No token keys: set JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET"),
    ],
)
def test_settings_that_cannot_work_are_one_line_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=f"^{message}") as caught:
        TokenVerifier(Settings(**overrides))
    assert "\n" not in str(caught.value)


def test_settings_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "JWT_JWKS_URL": "https://t.auth0.com/.well-known/jwks.json",
            "JWT_LEEWAY_SECONDS": "30",
            "JWT_USER_CLAIM": "email",
        }
    )
    assert s.jwt_jwks_url.startswith("https://") and s.jwt_leeway_seconds == 30 and s.jwt_user_claim == "email"
