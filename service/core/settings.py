"""One settings object, read from the environment once.

Every tunable of the API, the workers and the embedded stack lives here so that operators have
one list to read (the README's Configuration section and `.env.example` mirror it).
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import msgspec

from service.core.event_loop import http_parser_for, run_on
from service.core.settings_parsing import (
    SettingsError,
    convert,
    parse_model_slots,
    parse_schedule,
    parse_webhook_secret,
)

# Parsing and the event loop have their own modules; these names are still imported from here.
__all__ = [
    "DEV_JWT_SECRET",
    "MIN_SECRET_BYTES",
    "Settings",
    "SettingsError",
    "cors_origins",
    "parse_schedule",
    "parse_webhook_secret",
    "project_root",
]

T = TypeVar("T")
# The secret printed in the README and `.env.example`: fine for `serve`/`demo`, refused elsewhere.
DEV_JWT_SECRET = "dev-secret-change-me-0123456789abcdef"
MIN_SECRET_BYTES = 32


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
    # Local storage: flush each batch of stores with one syncfs(2) of its file system (Linux); false:
    # fsync each file and directory (a store sharing its file system with heavy writers).
    storage_syncfs: bool = True
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = False
    default_model: str | None = None  # None: the registry's choice (veo3 when FAL_KEY is set, else local)
    host: str = "127.0.0.1"
    port: int = 8000
    worker_concurrency: int = 4  # the default slots of a model that declares no max_concurrency
    # Per-model slots in one worker process, overriding the plugins' max_concurrency: "veo3=500,local=2".
    model_concurrency: str = ""
    cpu_processes: int = 0  # the worker's process pool for CPU-bound work (render, probe, trim); 0: the cores
    io_threads: int = 8  # the worker's threads for blocking file work (large reads and copies, store commits)
    database_pool_size: int = 10  # connections per process; a job holds one only while it reads or writes
    max_waiting_requests: int = 0  # requests one API process holds open; 0: what its descriptors allow
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
    event_loop: str = "uvloop"  # uvloop (and httptools for HTTP), or asyncio (and h11): the standard ones
    rate_limit_per_minute: int = 120
    job_status_rate_limit_per_minute: int = 600  # GET /video-gen/jobs/{id}: polling has its own budget
    http_keep_alive_seconds: int = 5  # an idle connection between requests is closed after this
    http_read_timeout_seconds: float = 30.0  # a request (line, headers, body) must arrive within this
    cors_allow_origins: str = ""  # comma-separated origins browsers may call from; empty: none
    # Observability (README: Observability)
    log_level: str = "INFO"
    log_format: str = "auto"  # auto: JSON lines, or console lines on a terminal; json; console
    metrics_token: str | None = None  # set: /metrics (API and workers) wants "Authorization: Bearer <token>"
    metrics_port: int = 0  # a worker serves /metrics and /health on HOST:METRICS_PORT; 0: not served
    webhook_secret: str | None = None  # whsec_<base64>; None: requests naming a webhookUrl are refused
    webhook_previous_secrets: str = ""  # comma-separated whsec_ secrets that still sign beside the new one
    webhook_allow_http: bool = False  # accept http:// webhook URLs (development)
    webhook_allow_private: bool = False  # deliver to loopback/private/link-local addresses (development, tests)
    webhook_timeout_seconds: float = 10.0  # one attempt, connect to last byte read
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h,10h"  # waits before each retry (jittered +-10 %)
    webhook_concurrency: int = 50  # deliveries one worker process sends at once
    webhook_per_host: int = 8  # of those, at most this many to one host (a dead receiver cannot take them all)
    webhook_poll_seconds: float = 1.0  # how often a worker looks for due deliveries
    webhook_retention_seconds: int = 30 * 86400  # how long a finished delivery's record is kept
    # Where clients reach this deployment (issue 15): links handed out must resolve from outside.
    public_url: str | None = None  # base of local download links; None: http://HOST:PORT
    s3_public_endpoint_url: str | None = None  # endpoint presigned links name; None: S3_ENDPOINT_URL

    @property
    def model_slots(self) -> dict[str, int]:
        """``MODEL_CONCURRENCY`` parsed: model name -> jobs of it one worker process runs at once."""
        return parse_model_slots(self.model_concurrency)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` on the configured event loop (``EVENT_LOOP``)."""
        return run_on(self.event_loop, main)

    @property
    def http_parser(self) -> str:
        """uvicorn's HTTP implementation that goes with ``EVENT_LOOP``."""
        return http_parser_for(self.event_loop)

    @property
    def public_base_url(self) -> str:
        """The base of every link this service hands out: ``PUBLIC_URL``, else where the API listens
        (a wildcard listen address is not somewhere a client can go, so loopback stands in)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{host}:{self.port}"

    @property
    def webhook_keys(self) -> list[bytes]:
        """The HMAC keys that sign webhooks: ``WEBHOOK_SECRET``'s first, then the previous ones."""
        if self.webhook_secret is None:
            return []
        previous = [s.strip() for s in self.webhook_previous_secrets.split(",") if s.strip()]
        return [parse_webhook_secret(self.webhook_secret, "WEBHOOK_SECRET")] + [
            parse_webhook_secret(s, "WEBHOOK_PREVIOUS_SECRETS") for s in previous
        ]

    @property
    def webhook_retry_delays(self) -> list[float]:
        """Seconds to wait before each retry of a webhook delivery."""
        return parse_schedule(self.webhook_retry_schedule, "WEBHOOK_RETRY_SCHEDULE")

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
                raw[name] = convert(name, value, hints[name])
        raw.update(overrides)
        return cls(**raw)


def cors_origins(settings: Settings) -> list[str]:
    """``CORS_ALLOW_ORIGINS`` as a list (comma-separated in the environment)."""
    return [origin.strip().rstrip("/") for origin in settings.cors_allow_origins.split(",") if origin.strip()]


def project_root() -> Path:
    """Repository root: where `var/`, the sample image and `migrations/` are found."""
    return Path(__file__).resolve().parents[2]
