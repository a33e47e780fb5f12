"""The environment's strings as typed setting values.

Each parser raises ``SettingsError`` with one line naming the variable and the form it expects
(never a msgspec path or a traceback): ``video-gen`` prints that line and refuses to start.
"""

from __future__ import annotations

import base64
import binascii
import types
from typing import Any, Union, get_args, get_origin

import msgspec


class SettingsError(ValueError):
    """A setting that cannot work: one line naming the variable and the expected form."""


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false"}


def convert(name: str, value: str, hint: Any) -> Any:
    """``value`` as the field's type, or a SettingsError in words (never a msgspec path)."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    if hint is str:
        return value
    try:
        return msgspec.convert(value, hint, strict=False)
    except msgspec.ValidationError:
        raise SettingsError(f"{name.upper()} must be {_TYPE_WORDS.get(hint, hint)}, got {value!r}") from None


def parse_model_slots(text: str) -> dict[str, int]:
    """``MODEL_CONCURRENCY`` (``"veo3=500,local=2"``): model name -> jobs of it one worker runs at once."""
    slots: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise SettingsError(
                f"MODEL_CONCURRENCY must be model=N,... with N >= 1 (e.g. veo3=500,local=2), got {part!r}"
            )
        slots[name.strip()] = int(value)
    return slots


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_schedule(text: str, name: str) -> list[float]:
    """``"5s,5m,2h"`` as seconds; a SettingsError naming ``name`` when it is not one."""
    delays = []
    for part in (p.strip() for p in text.split(",")):
        number = part.rstrip("smhd")
        try:
            value = float(number) * _UNITS[part[len(number) :] or "s"]
        except (ValueError, KeyError):
            raise SettingsError(f"{name} must be durations like 5s,5m,2h, got {part!r}") from None
        if value < 0:
            raise SettingsError(f"{name} must not have negative durations, got {part!r}")
        delays.append(value)
    return delays


def parse_webhook_secret(secret: str, name: str) -> bytes:
    """The key of a Standard Webhooks secret (``whsec_`` and base64 of 24 to 64 bytes)."""
    hint = "(e.g. python -c \"import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\")"
    if not secret.startswith("whsec_"):
        raise SettingsError(f"{name} must start with whsec_ (a Standard Webhooks secret) {hint}")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name} must be whsec_ followed by base64 {hint}") from None
    if not 24 <= len(key) <= 64:
        raise SettingsError(f"{name} must encode 24 to 64 random bytes, got {len(key)} {hint}")
    return key
