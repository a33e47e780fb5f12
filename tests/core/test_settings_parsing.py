"""The environment's strings as typed values: each parser's accepted forms and its one-line refusal.
``test_checks.py`` covers the same refusals as a process meets them, through ``Settings.from_env``."""

from __future__ import annotations

import pytest

from service.core import settings as settings_module
from service.core.settings_parsing import (
    SettingsError,
    convert,
    parse_model_slots,
    parse_schedule,
    parse_webhook_secret,
)


def test_values_convert_to_the_fields_type_or_are_refused_in_words() -> None:
    assert convert("port", "8080", int) == 8080
    assert convert("s3_path_style", "true", bool) is True
    assert convert("redis_url", "redis://x", str | None) == "redis://x"
    with pytest.raises(SettingsError, match=r"^PORT must be an integer, got 'abc'$"):
        convert("port", "abc", int)
    with pytest.raises(SettingsError, match=r"^JWT_LEEWAY_SECONDS must be a number, got 'a bit'$"):
        convert("jwt_leeway_seconds", "a bit", float)


def test_model_slots() -> None:
    assert parse_model_slots("") == {}
    assert parse_model_slots(" veo3=500, local=2 ,") == {"veo3": 500, "local": 2}
    for bad in ("veo3", "veo3=0", "=3", "veo3=x"):
        with pytest.raises(SettingsError, match="MODEL_CONCURRENCY must be model=N"):
            parse_model_slots(bad)


def test_schedules_in_units() -> None:
    assert parse_schedule("500ms, 2s,1m,1h,1d,3", "S") == [0.5, 2, 60, 3600, 86400, 3]
    with pytest.raises(SettingsError, match="S must be durations like 5s,5m,2h, got 'soon'"):
        parse_schedule("5s,soon", "S")
    with pytest.raises(SettingsError, match="S must not have negative durations"):
        parse_schedule("-5s", "S")


def test_webhook_secrets() -> None:
    assert parse_webhook_secret("whsec_" + "A" * 43, "W") == bytes(32)
    with pytest.raises(SettingsError, match="W must start with whsec_"):
        parse_webhook_secret("hunter2", "W")
    with pytest.raises(SettingsError, match="W must encode 24 to 64 random bytes, got 5"):
        parse_webhook_secret("whsec_c2hvcnQ=", "W")


def test_the_settings_module_still_exports_the_parsers_it_had() -> None:
    assert settings_module.SettingsError is SettingsError
    assert settings_module.parse_webhook_secret is parse_webhook_secret
    assert settings_module.parse_schedule is parse_schedule
