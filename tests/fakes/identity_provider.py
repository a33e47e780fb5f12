"""A fake identity provider: keys generated here (RSA, EC), a JWKS endpoint on loopback served by
the standard library's HTTP server in a thread, and tokens signed the way providers sign them.

``fetches`` counts the requests the JWKS endpoint received; ``down`` makes it answer 503;
``rotate()`` publishes a new key (and optionally retires the old ones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://tenant.idp.example/"
AUDIENCE = "https://video-gen.example/api"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def rsa(cls, kid: str | None = None, alg: str = "RS256") -> SigningKey:
        return cls(
            kid or f"rsa-{uuid.uuid4().hex[:8]}", alg, rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )

    @classmethod
    def ec(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or f"ec-{uuid.uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if isinstance(self.private, rsa.RSAPrivateKey) else ECAlgorithm
        return {
            **algorithm.to_jwk(self.private.public_key(), as_dict=True),
            "kid": self.kid,
            "use": "sig",
            "alg": self.alg,
        }

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, alg: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers={"kid": kid or self.kid})


def claims(sub: str | None = "user-1", *, ttl: timedelta = timedelta(minutes=10), **extra: Any) -> dict[str, Any]:
    """What a provider puts in an access token, with overrides (``None`` drops a claim)."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl, **extra}
    return {k: v for k, v in values.items() if v is not None}


@dataclass
class IdentityProvider:
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.rsa(), SigningKey.ec()])
    fetches: int = 0
    down: bool = False
    url: str = ""  # set by start(), kept after stop() (then nothing answers there)
    _server: ThreadingHTTPServer | None = None

    @property
    def rsa(self) -> SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def rotate(self, *, retire: bool = False) -> SigningKey:
        new = SigningKey.rsa()
        self.keys = [new] if retire else [new, *self.keys]
        return new

    def start(self) -> IdentityProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                status, body = (503, b"down") if provider.down else (200, json.dumps(provider.jwks()).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/.well-known/jwks.json"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-jwks").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """An HS256 token keyed by ``secret`` whatever it is (pyjwt refuses to sign with a PEM)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    plain = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in payload.items()}
    body = _b64(json.dumps(plain).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def refused_tokens(idp: IdentityProvider, secret: str) -> dict[str, tuple[str, str]]:
    """Every token the API must refuse when configured for ``idp`` (issuer and audience checked):
    case -> (token, why it is refused)."""
    now = datetime.now(UTC)
    key, other = idp.rsa, SigningKey.rsa(kid=idp.rsa.kid)
    pem = key.public_pem().encode()
    return {
        "wrong issuer": (key.sign(claims(iss="https://evil.example/")), "Invalid issuer"),
        "no issuer": (key.sign(claims(iss=None)), 'missing the "iss" claim'),
        "wrong audience": (key.sign(claims(aud="https://another-api.example")), "Audience doesn't match"),
        "no audience": (key.sign(claims(aud=None)), 'missing the "aud" claim'),
        "expired": (key.sign(claims(exp=now - timedelta(minutes=1))), "Signature has expired"),
        "no exp": (key.sign(claims(exp=None)), 'missing the "exp" claim'),
        "not yet valid": (key.sign(claims(nbf=now + timedelta(minutes=5))), "not yet valid (nbf)"),
        "issued in the future": (key.sign(claims(iat=now + timedelta(minutes=5))), "not yet valid (iat)"),
        "alg none": (jwt.encode(claims(), None, algorithm="none", headers={"kid": key.kid}), "'none' is not accepted"),
        "HS256 keyed with the public key": (hs256_with(pem, claims(), key.kid), "'HS256' is not accepted"),
        "HS256 with JWT_SECRET": (jwt.encode(claims(), secret, algorithm="HS256"), "'HS256' is not accepted"),
        "another key, same kid": (other.sign(claims()), "Signature verification failed"),
        "another key, unknown kid": (SigningKey.ec().sign(claims()), "no signing key for kid"),
        "no user id": (key.sign(claims(sub=None)), "no user id in claim 'sub'"),
        "garbage": ("not-a-jwt", "not a JWT"),
    }
