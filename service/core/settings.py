"""One settings object, read from the environment once.

Every tunable of the API, the workers and the embedded stack lives here so that operators have
one list to read (the README's Configuration section and `.env.example` mirror it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Runtime configuration. Field names map to upper-case environment variables."""

    jwt_secret: str = "dev-secret-change-me-0123456789abcdef"
    database_url: str = "sqlite:///var/video-gen.sqlite"
    redis_url: str | None = None  # None: spawn an embedded redis-server
    storage_url: str = "file://./var/storage"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = False
    fal_key: str | None = None
    fal_endpoint: str = "fal-ai/veo3/image-to-video"
    fal_poll_seconds: float = 3.0
    fal_send_image_url: bool = False
    default_model: str | None = None  # None: veo3 when FAL_KEY is set, else local
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
    download_url_seconds: int = 900
    redis_max_connections: int = 16
    redis_key_prefix: str = "video-gen"
    log_level: str = "INFO"
    event_loop: str = "uvloop"  # uvloop (and httptools for HTTP), or asyncio (and h11): the standard ones
    rate_limit_per_minute: int = 120
    local_model_width: int = 1024
    local_model_height: int = 576
    local_model_fps: int = 24
    # Where clients reach this deployment (issue 15): links handed out must resolve from outside.
    public_url: str | None = None  # base of local download links; None: http://HOST:PORT
    s3_public_endpoint_url: str | None = None  # endpoint presigned links name; None: S3_ENDPOINT_URL

    @property
    def model_default(self) -> str:
        """The model used when a request names none (the spec's callers never do)."""
        if self.default_model:
            return self.default_model
        return "veo3" if self.fal_key else "local"

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
    def public_base_url(self) -> str:
        """The base of every link this service hands out: ``PUBLIC_URL``, else where the API listens
        (a wildcard listen address is not somewhere a client can go, so loopback stands in)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{host}:{self.port}"

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables (``JWT_SECRET``, ``DATABASE_URL`` ...)."""
        env = dict(os.environ if env is None else env)
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            value = env.get(name.upper())
            if value is not None and value != "":
                raw[name] = value
        raw.update(overrides)
        return msgspec.convert(raw, cls, strict=False)


def project_root() -> Path:
    """Repository root: where `var/`, the sample image and `migrations/` are found."""
    return Path(__file__).resolve().parents[2]
