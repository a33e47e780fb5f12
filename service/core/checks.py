"""Start-up validation of the settings: a process refuses to start on a setting that cannot work,
with one line naming the variable and the form it expects (``video-gen`` prints it and exits 2).

Types are checked while the environment is read (``Settings.from_env``); here are the rules a type
cannot say: URL schemes, ranges, the JWT secret, the default model. What a database's refusal at
start means: ``db_refusals.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from service.core.db_refusals import redact
from service.core.settings import DEV_JWT_SECRET, MIN_SECRET_BYTES, Settings, SettingsError, cors_origins
from service.core.tokens import TokenVerifier

_DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_STORAGE_SCHEMES = ("file://", "s3://")
_EVENT_LOOPS = ("uvloop", "asyncio")
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# name -> (rule, the expected form): each must hold for the value the settings carry.
_POSITIVE = "must be greater than 0"
_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "port": (lambda v: 0 <= v <= 65535, "must be between 0 and 65535"),
    "metrics_port": (lambda v: 0 <= v <= 65535, "must be between 0 and 65535 (0: workers serve no /metrics)"),
    "worker_concurrency": (lambda v: v >= 1, "must be at least 1"),
    "database_pool_size": (lambda v: v >= 1, "must be at least 1"),
    "cpu_processes": (lambda v: v >= 0, "must not be negative (0: one per core)"),
    "io_threads": (lambda v: v >= 1, "must be at least 1"),
    "max_waiting_requests": (lambda v: v >= 0, "must not be negative (0: what the file descriptors allow)"),
    "job_max_attempts": (lambda v: v >= 1, "must be at least 1"),
    "redis_max_connections": (lambda v: v >= 2, "must be at least 2"),
    "sync_wait_seconds": (lambda v: v >= 0, "must not be negative"),
    "shutdown_grace_seconds": (lambda v: v >= 0, "must not be negative"),
    "rate_limit_per_minute": (lambda v: v >= 0, "must not be negative (0 disables it)"),
    "job_status_rate_limit_per_minute": (lambda v: v >= 0, "must not be negative (0 disables it)"),
    "webhook_concurrency": (lambda v: v >= 1, "must be at least 1"),
    "webhook_per_host": (lambda v: v >= 1, "must be at least 1"),
    **dict.fromkeys(
        (
            "job_lease_seconds",
            "reply_ttl_seconds",
            "jobs_stream_maxlen",
            "job_meta_ttl_seconds",
            "idempotency_ttl_seconds",
            "dead_letter_maxlen",
            "max_source_bytes",
            "max_source_pixels",
            "max_prompt_chars",
            "download_url_seconds",
            "upload_url_seconds",
            "http_keep_alive_seconds",
            "http_read_timeout_seconds",
            "webhook_timeout_seconds",
            "webhook_poll_seconds",
            "webhook_retention_seconds",
        ),
        (lambda v: v > 0, _POSITIVE),
    ),
}


def check_settings(settings: Settings, *, embedded: bool = False) -> None:
    """Raise SettingsError for the first setting that cannot work.

    ``embedded`` is ``video-gen serve``/``demo``: local, throw-away, so the public development JWT
    secret and an unset ``REDIS_URL`` are fine there and nowhere else.
    """
    for name, (rule, expected) in _RULES.items():
        value = getattr(settings, name, None)
        if value is not None and not rule(value):
            raise SettingsError(f"{name.upper()} {expected}, got {value!r}")
    check_database_url(settings.database_url)
    if settings.redis_url is not None and not settings.redis_url.startswith(_REDIS_SCHEMES):
        raise SettingsError(f"REDIS_URL must start with {_words(_REDIS_SCHEMES)}, got {settings.redis_url!r}")
    if not settings.storage_url.strip().startswith(_STORAGE_SCHEMES):
        raise SettingsError(
            f"STORAGE_URL must be file:///absolute/dir, file://./relative/dir or s3://bucket[/prefix], "
            f"got {settings.storage_url!r}"
        )
    if settings.event_loop not in _EVENT_LOOPS:
        raise SettingsError(f"EVENT_LOOP must be one of {', '.join(_EVENT_LOOPS)}, got {settings.event_loop!r}")
    _check_source_prefix(settings.source_key_prefix)
    for origin in cors_origins(settings):
        if origin != "*" and (not origin.startswith(("http://", "https://")) or origin.count("/") != 2):
            raise SettingsError(
                f"CORS_ALLOW_ORIGINS must be a comma-separated list of origins like https://app.example.com "
                f"(or *), got {origin!r}"
            )
    _check_logging(settings)
    settings.model_slots  # noqa: B018  (MODEL_CONCURRENCY's form; its names are checked with the models)
    settings.webhook_keys  # noqa: B018  (a bad secret is refused at start, not at the first delivery)
    settings.webhook_retry_delays  # noqa: B018
    algorithms = token_algorithms(settings)
    if not embedded:
        if not settings.redis_url:
            raise SettingsError("REDIS_URL is not set: run `video-gen serve` for the embedded stack, or set REDIS_URL")
        _require_key_source(settings, algorithms)


def token_algorithms(settings: Settings) -> list[str]:
    """The token algorithms the API will accept; SettingsError for a token configuration that
    cannot work (JWKS URL, PEM, JWT_ALGORITHMS: see ``tokens.py``)."""
    return TokenVerifier(settings).algorithms


def _check_logging(settings: Settings) -> None:
    if settings.log_format not in _LOG_FORMATS:
        raise SettingsError(f"LOG_FORMAT must be one of {', '.join(_LOG_FORMATS)}, got {settings.log_format!r}")
    if not isinstance(logging.getLevelName(settings.log_level.upper()), int):
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {settings.log_level!r}")


def _require_key_source(settings: Settings, algorithms: list[str]) -> None:
    """Tokens must be verifiable with a key nobody else knows: a JWT_SECRET of 32 bytes or more that
    is not the public development value. Waived when an identity provider's keys are configured, no
    HMAC algorithm is accepted and storage is S3: then JWT_SECRET verifies no token and signs no
    download link (local storage's links are signed with it)."""
    provider = bool(settings.jwt_jwks_url or settings.jwt_public_key)
    local_links = settings.storage_url.strip().startswith("file://")
    if provider and not local_links and not any(a.startswith("HS") for a in algorithms):
        return
    secret = settings.jwt_secret
    if secret == DEV_JWT_SECRET:
        raise SettingsError(
            "JWT_SECRET is the public development value: set a secret of at least "
            f"{MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {len(secret.encode())} "
            "(e.g. `openssl rand -hex 32`)"
        )


def check_database_url(url: str) -> None:
    """``sqlite:///path``, ``postgresql://...`` or ``postgres://...``; nothing else is guessed at."""
    if not url.startswith(_DATABASE_SCHEMES) or url in _DATABASE_SCHEMES:
        raise SettingsError(
            f"DATABASE_URL must be sqlite:///path, postgresql://... or postgres://..., got {redact(url)!r}"
        )


def _check_source_prefix(template: str) -> None:
    try:
        template.format(user_id="u")
    except (KeyError, IndexError, ValueError):
        raise SettingsError(
            f"SOURCE_KEY_PREFIX may only use {{user_id}} (e.g. images/{{user_id}}/), got {template!r}"
        ) from None


def check_default_model(settings: Settings, installed: Iterable[str]) -> None:
    """``DEFAULT_MODEL``, when set, must name an installed model (unset: the registry chooses), and
    so must every model ``MODEL_CONCURRENCY`` names."""
    names = sorted(installed)
    if settings.default_model and settings.default_model not in names:
        raise SettingsError(
            f"DEFAULT_MODEL must name an installed model ({', '.join(names) or 'none installed'}), "
            f"got {settings.default_model!r}"
        )
    unknown = sorted(set(settings.model_slots) - set(names))
    if unknown:
        raise SettingsError(
            f"MODEL_CONCURRENCY must name installed models ({', '.join(names) or 'none installed'}), got {unknown}"
        )


def _words(options: tuple[str, ...]) -> str:
    return f"{', '.join(options[:-1])} or {options[-1]}"
