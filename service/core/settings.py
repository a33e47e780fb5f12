"""One settings object, read from the environment once.

Every tunable of the API, the workers and the embedded stack lives here so that operators have
one list to read (the README's Configuration section and `.env.example` mirror it).
"""

from __future__ import annotations

import asyncio
import os
import types
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec

T = TypeVar("T")
# The secret printed in the README and `.env.example`: fine for `serve`/`demo`, refused elsewhere.
DEV_JWT_SECRET = "dev-secret-change-me-0123456789abcdef"
MIN_SECRET_BYTES = 32


class SettingsError(ValueError):
    """A setting that cannot work: one line naming the variable and the expected form."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Runtime configuration. Field names map to upper-case environment variables."""

    jwt_secret: str = DEV_JWT_SECRET
    # A customer's identity provider (README "Tokens from your identity provider"): its keys, by
    # JWKS URL or one PEM, and what its tokens must say. Empty: HS256 tokens signed with JWT_SECRET.
    jwt_jwks_url: str = ""
    jwt_public_key: str = ""  # a PEM, or the path of a PEM file
    jwt_algorithms: str = ""  # comma-separated; empty: derived from the key sources configured
    jwt_issuer: str = ""
    jwt_audience: str = ""  # comma-separated when several are accepted
    jwt_leeway_seconds: float = 5.0  # clock skew allowed on exp, nbf and iat
    jwt_user_claim: str = "sub"  # a claim name or a dotted path
    jwt_roles_claim: str = "roles"
    jwt_admin_role: str = "admin"
    jwt_jwks_cache_seconds: float = 300.0  # keys are refetched this often
    jwt_jwks_cooldown_seconds: float = 10.0  # least time between refetches for unknown kids, and between retries
    database_url: str = "sqlite:///var/video-gen.sqlite"
    redis_url: str | None = None  # None: spawn an embedded redis-server
    storage_url: str = "file://./var/storage"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = False
    default_model: str | None = None  # None: the registry's choice (veo3 when FAL_KEY is set, else local)
    host: str = "127.0.0.1"
    port: int = 8000
    worker_concurrency: int = 4
    sync_wait_seconds: float = 120.0
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 3
    shutdown_grace_seconds: float = 30.0
    reply_ttl_seconds: int = 3600
    jobs_stream_maxlen: int = 100_000  # the most jobs waiting or running; beyond it new requests get 503
    job_meta_ttl_seconds: int = 7 * 86400  # how long Redis remembers a job's owner (GET /video-gen/jobs/{id})
    idempotency_ttl_seconds: int = 86400  # an Idempotency-Key is honoured this long
    dead_letter_maxlen: int = 10_000  # approximate cap of the dead-letter stream
    source_key_prefix: str = "images/{user_id}/"
    max_source_bytes: int = 8 * 1024 * 1024
    max_source_pixels: int = 40_000_000  # width x height of a source image; decoding is bounded by it
    max_prompt_chars: int = 2000
    download_url_seconds: int = 900
    upload_url_seconds: int = 900  # how long an upload URL from POST /video-gen/uploads is valid
    redis_max_connections: int = 16
    redis_key_prefix: str = "video-gen"
    log_level: str = "INFO"
    event_loop: str = "uvloop"  # uvloop (and httptools for HTTP), or asyncio (and h11): the standard ones
    rate_limit_per_minute: int = 120
    job_status_rate_limit_per_minute: int = 600  # GET /video-gen/jobs/{id}: polling has its own budget
    cors_allow_origins: str = ""  # comma-separated origins browsers may call from; empty: none

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` on the configured event loop (``EVENT_LOOP``)."""
        if self.event_loop == "uvloop":
            import uvloop

            return uvloop.run(main)
        return asyncio.run(main)

    @property
    def http_parser(self) -> str:
        """uvicorn's HTTP implementation that goes with ``EVENT_LOOP``."""
        return "httptools" if self.event_loop == "uvloop" else "h11"

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables (``JWT_SECRET``, ``DATABASE_URL`` ...)."""
        env = dict(os.environ if env is None else env)
        hints = get_type_hints(cls)
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            value = env.get(name.upper())
            if value is not None and value != "":
                raw[name] = _convert(name, value, hints[name])
        raw.update(overrides)
        return cls(**raw)


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false"}


def _convert(name: str, value: str, hint: Any) -> Any:
    """``value`` as the field's type, or a SettingsError in words (never a msgspec path)."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    if hint is str:
        return value
    try:
        return msgspec.convert(value, hint, strict=False)
    except msgspec.ValidationError:
        raise SettingsError(f"{name.upper()} must be {_TYPE_WORDS.get(hint, hint)}, got {value!r}") from None


def project_root() -> Path:
    """Repository root: where `var/`, the sample image and `migrations/` are found."""
    return Path(__file__).resolve().parents[2]
