"""Start-up validation: every setting that cannot work is one line naming the variable."""

from __future__ import annotations

import pytest

from service.core.checks import check_default_model, check_settings
from service.core.settings import DEV_JWT_SECRET, Settings, SettingsError

GOOD = {"JWT_SECRET": "x" * 32, "REDIS_URL": "redis://127.0.0.1:6379/0"}


def _check(env: dict[str, str], *, embedded: bool = False) -> Settings:
    settings = Settings.from_env({**GOOD, **env})
    check_settings(settings, embedded=embedded)
    return settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "PORT must be an integer, got 'abc'"),
        ({"SYNC_WAIT_SECONDS": "soon"}, "SYNC_WAIT_SECONDS must be a number, got 'soon'"),
        ({"S3_PATH_STYLE": "maybe"}, "S3_PATH_STYLE must be true or false, got 'maybe'"),
        ({"PORT": "70000"}, "PORT must be between 0 and 65535, got 70000"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY must be at least 1, got 0"),
        ({"MAX_SOURCE_PIXELS": "-1"}, "MAX_SOURCE_PIXELS must be greater than 0, got -1"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with redis://, rediss:// or unix://, got 'http://x'"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be sqlite:///path, postgresql://... or postgres://"),
        ({"DATABASE_URL": "postgres+asyncpg://u@h/db"}, "DATABASE_URL must be sqlite:///path"),
        ({"DATABASE_URL": "var/db.sqlite"}, "DATABASE_URL must be sqlite:///path"),
        ({"DATABASE_URL": "postgresql://u:hunter2@h/db?x=1".replace("postgresql", "pg")}, "got 'pg://u:***@h/db"),
        ({"STORAGE_URL": "ftp://x"}, "STORAGE_URL must be file:///absolute/dir"),
        ({"EVENT_LOOP": "trio"}, "EVENT_LOOP must be one of uvloop, asyncio, got 'trio'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of auto, json, console, got 'xml'"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'"),
        ({"METRICS_PORT": "-1"}, "METRICS_PORT must be between 0 and 65535"),
        ({"SOURCE_KEY_PREFIX": "images/{user}/"}, "SOURCE_KEY_PREFIX may only use {user_id}"),
        ({"CORS_ALLOW_ORIGINS": "app.example.com"}, "CORS_ALLOW_ORIGINS must be a comma-separated list of origins"),
        ({"CORS_ALLOW_ORIGINS": "https://a.example/path"}, "got 'https://a.example/path'"),
        ({"JWT_SECRET": DEV_JWT_SECRET}, "JWT_SECRET is the public development value"),
        ({"JWT_SECRET": "too-short"}, "JWT_SECRET must be at least 32 bytes, got 9"),
        ({"WEBHOOK_SECRET": "hunter2"}, "WEBHOOK_SECRET must start with whsec_ (a Standard Webhooks secret)"),
        ({"WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "WEBHOOK_SECRET must encode 24 to 64 random bytes, got 5"),
        ({"WEBHOOK_SECRET": "whsec_" + "A" * 43, "WEBHOOK_PREVIOUS_SECRETS": "old"}, "WEBHOOK_PREVIOUS_SECRETS must"),
        ({"WEBHOOK_RETRY_SCHEDULE": "5s,soon"}, "WEBHOOK_RETRY_SCHEDULE must be durations like 5s,5m,2h, got 'soon'"),
        ({"WEBHOOK_TIMEOUT_SECONDS": "0"}, "WEBHOOK_TIMEOUT_SECONDS must be greater than 0, got 0.0"),
        ({"WEBHOOK_PER_HOST": "0"}, "WEBHOOK_PER_HOST must be at least 1, got 0"),
        ({"JWT_ALGORITHMS": "HS256,none"}, "JWT_ALGORITHMS must not include none"),
        ({"JWT_JWKS_URL": "http://idp.example/jwks"}, "JWT_JWKS_URL must be an https:// URL"),
        ({"JWT_LEEWAY_SECONDS": "a bit"}, "JWT_LEEWAY_SECONDS must be a number, got 'a bit'"),
        (  # HS256 still accepted beside the provider: the secret still matters
            {"JWT_JWKS_URL": "https://t.example/jwks", "JWT_ALGORITHMS": "RS256,HS256", "JWT_SECRET": DEV_JWT_SECRET},
            "JWT_SECRET is the public development value",
        ),
    ],
)
def test_a_setting_that_cannot_work_is_one_line_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _check(env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and "$." not in str(caught.value)


def test_webhook_settings() -> None:
    settings = _check({"WEBHOOK_SECRET": "whsec_" + "A" * 43, "WEBHOOK_PREVIOUS_SECRETS": "whsec_" + "B" * 43 + ","})
    assert [len(k) for k in settings.webhook_keys] == [32, 32] and settings.webhook_keys[0] == bytes(32)
    assert _check({"WEBHOOK_RETRY_SCHEDULE": "500ms, 2s,1m,1h,1d"}).webhook_retry_delays == [0.5, 2, 60, 3600, 86400]
    assert Settings().webhook_retry_delays == [5, 300, 1800, 7200, 18000, 36000, 36000]  # 28 h 35 min in all


@pytest.mark.parametrize("source", ["JWT_JWKS_URL", "JWT_PUBLIC_KEY"])
def test_with_an_identity_providers_keys_jwt_secret_verifies_no_token(source: str) -> None:
    from tests.fakes.identity_provider import SigningKey

    value = "https://t.example/.well-known/jwks.json" if source == "JWT_JWKS_URL" else SigningKey.ec().public_pem()
    env = {source: value, "JWT_SECRET": DEV_JWT_SECRET, "STORAGE_URL": "s3://videos"}
    assert _check(env).jwt_secret == DEV_JWT_SECRET
    with pytest.raises(SettingsError, match="JWT_SECRET is the public development value"):
        _check({**env, "STORAGE_URL": "file:///srv/videos"})  # it signs local download links


def test_the_accepted_database_urls() -> None:
    for url in ("sqlite:///var/x.sqlite", "sqlite:////abs/x.sqlite", "postgresql://u@h/db", "postgres://u@h:1/db"):
        assert _check({"DATABASE_URL": url}).database_url == url


def test_the_embedded_stack_may_use_the_development_secret_and_no_redis() -> None:
    settings = Settings.from_env({})
    check_settings(settings, embedded=True)
    with pytest.raises(SettingsError, match="JWT_SECRET is the public development value"):
        check_settings(msgspec_replace(settings, redis_url="redis://h"), embedded=False)
    with pytest.raises(SettingsError, match="REDIS_URL is not set"):
        check_settings(msgspec_replace(settings, jwt_secret="y" * 32), embedded=False)


def msgspec_replace(settings: Settings, **changes: object) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def test_the_default_model_must_be_installed() -> None:
    check_default_model(_check({}), ["local", "veo3"])
    with pytest.raises(SettingsError, match=r"DEFAULT_MODEL must name an installed model \(local\), got 'veo4'"):
        check_default_model(_check({"DEFAULT_MODEL": "veo4"}), ["local"])
    check_default_model(_check({"FAL_KEY": "k"}), ["local"])  # unset: the registry picks an available one
