"""Which tokens the service accepts, and who they name.

Three key sources, any of which may be configured: ``JWT_SECRET`` (HS256, the embedded stack and
tests), ``JWT_PUBLIC_KEY`` (one PEM) and ``JWT_JWKS_URL`` (a provider's rotating keys). A token's
``alg`` must be in ``JWT_ALGORITHMS`` and match the family of the key that verifies it: an HMAC
algorithm only ever pairs with ``JWT_SECRET``, so a token "signed" with the public key as an HMAC
secret is refused, and ``none`` is never allowed. ``exp`` is required; ``iss`` and ``aud`` are
checked when ``JWT_ISSUER`` / ``JWT_AUDIENCE`` are set; ``JWT_LEEWAY_SECONDS`` allows clock skew.

The user id and roles are read from configurable claims (``claims.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from litestar.exceptions import NotAuthorizedException

from service.core.claims import ClaimMapping, Principal
from service.core.jwks import JwksKeys
from service.core.settings import Settings, SettingsError
from service.core.token_cache import VerifiedTokens

HMAC = {"HS256", "HS384", "HS512"}
RSA = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
EC = {"ES256", "ES384", "ES512", "ES256K"}
OKP = {"EdDSA"}
ASYMMETRIC = RSA | EC | OKP
# What JWKS keys may sign with when JWT_ALGORITHMS is not set (the usual providers' choices).
JWKS_DEFAULT = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_KTY = {"RSA": RSA, "EC": EC, "OKP": OKP}


def _invalid(reason: str) -> NotAuthorizedException:
    return NotAuthorizedException(f"Invalid token: {reason}")


def load_public_key(value: str) -> Any:
    """``JWT_PUBLIC_KEY``: the PEM itself or the path of a file holding it."""
    text = value if "-----BEGIN" in value else _read(value)
    try:
        key = load_pem_public_key(text.replace("\\n", "\n").encode())
    except ValueError:
        raise SettingsError("JWT_PUBLIC_KEY must be a PEM public key (or the path of one)") from None
    if not isinstance(
        key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
    ):
        raise SettingsError(f"JWT_PUBLIC_KEY must be an RSA, EC or Ed25519 key, got {type(key).__name__}")
    return key


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"JWT_PUBLIC_KEY must be a PEM or a readable file, got {path!r} ({exc.strerror})") from None


def _family(key: Any) -> set[str]:
    if isinstance(key, rsa.RSAPublicKey):
        return RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        return EC
    return OKP


def allowed_algorithms(settings: Settings, public_key: Any | None) -> list[str]:
    """``JWT_ALGORITHMS``, checked, or the default for what is configured: the provider's
    asymmetric algorithms when it has keys here, HS256 (``JWT_SECRET``) otherwise."""
    names = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
    if not names:
        names = [*(JWKS_DEFAULT if settings.jwt_jwks_url else [])]
        names += sorted(_family(public_key) - set(names)) if public_key is not None else []
        if not names and not settings.jwt_secret:
            raise SettingsError("No token keys: set JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET")
        return names or ["HS256"]
    if any(name.lower() == "none" for name in names):
        raise SettingsError("JWT_ALGORITHMS must not include none: unsigned tokens are never accepted")
    if unknown := [name for name in names if name not in HMAC | ASYMMETRIC]:
        known = ", ".join(sorted(HMAC | ASYMMETRIC))
        raise SettingsError(f"JWT_ALGORITHMS: unknown algorithm {unknown[0]!r} (one of {known})")
    for name in names:
        if name in ASYMMETRIC and not settings.jwt_jwks_url and public_key is None:
            raise SettingsError(f"JWT_ALGORITHMS lists {name} but neither JWT_JWKS_URL nor JWT_PUBLIC_KEY is set")
        if name in HMAC and not settings.jwt_secret:
            raise SettingsError(f"JWT_ALGORITHMS lists {name} but JWT_SECRET is empty")
    return names


class TokenVerifier:
    """Verifies a bearer token against the configured keys and maps its claims to a Principal."""

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.jwt_secret
        self.public_key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        self.jwks = (
            JwksKeys(
                settings.jwt_jwks_url,
                cache_seconds=settings.jwt_jwks_cache_seconds,
                cooldown_seconds=settings.jwt_jwks_cooldown_seconds,
            )
            if settings.jwt_jwks_url
            else None
        )
        self.algorithms = allowed_algorithms(settings, self.public_key)
        self.issuer = settings.jwt_issuer or None
        audiences = [a.strip() for a in settings.jwt_audience.split(",") if a.strip()]
        self.audience = audiences or None
        self.leeway = settings.jwt_leeway_seconds
        self._verified = VerifiedTokens(leeway=self.leeway)
        self.claims = ClaimMapping(
            user=settings.jwt_user_claim, roles=settings.jwt_roles_claim, admin_role=settings.jwt_admin_role
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> TokenVerifier:
        # Litestar deep-copies routers' middleware definitions; there is one key cache per app.
        return self

    @property
    def ready(self) -> bool:
        """False while a JWKS provider's keys have never been loaded."""
        return self.jwks is None or self.jwks.loaded

    async def decode(self, token: str) -> dict[str, Any]:
        """The token's verified claims; ``NotAuthorizedException`` (the spec's 401) otherwise."""
        if (claims := self._verified.get(token)) is not None:
            return claims
        claims = await self._verify(token)
        self._verified.put(token, claims)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid("not a JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _invalid(f"algorithm {alg!r} is not accepted")
        key = await self._key(alg, header.get("kid"))
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.InvalidTokenError as exc:
            raise _invalid(str(exc) or type(exc).__name__) from None

    async def principal(self, token: str) -> tuple[Principal, dict[str, Any]]:
        """The caller a token names, and its claims."""
        claims = await self.decode(token)
        return self.claims.principal(claims), claims

    async def _key(self, alg: str, kid: Any) -> Any:
        if alg in HMAC:
            return self.secret  # never a public key: pyjwt and this pairing both refuse that
        if self.jwks is not None:
            jwk = await self.jwks.key(kid) if isinstance(kid, str) and kid else self.jwks.only_key()
            if jwk is not None:
                return _bind(jwk, alg)
        if self.public_key is not None and alg in _family(self.public_key):
            return self.public_key
        if self.jwks is not None and not self.jwks.loaded:
            raise _invalid("the identity provider's keys are not loaded yet")
        raise _invalid(f"no signing key for kid {kid!r}" if kid else "no signing key")


def _bind(jwk: PyJWK, alg: str) -> PyJWK:
    """The JWKS key bound to the token's algorithm when the key allows it (a key that states its
    ``alg`` verifies only that one; one that does not, only its family: RS*/PS* for RSA ...)."""
    if jwk.algorithm_name == alg or "alg" in jwk._jwk_data:
        return jwk  # pyjwt refuses a token whose alg differs from the key's
    if alg in _KTY.get(jwk._jwk_data.get("kty", ""), set()):
        return PyJWK(jwk._jwk_data, algorithm=alg)
    raise _invalid(f"algorithm {alg!r} does not match the key {jwk.key_id!r}")
