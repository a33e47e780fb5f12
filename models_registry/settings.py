"""A plugin's own settings, read from the environment into a small struct of its own.

The service's ``Settings`` knows nothing of plugins; a plugin names its variables by a prefix
(``FAL_`` + ``key`` -> ``FAL_KEY``) and reads them once, when it is created::

    class FalSettings(msgspec.Struct, kw_only=True, frozen=True):
        key: str | None = None
        poll_seconds: float = 3.0

    settings = read_settings(FalSettings, "FAL_")

A bad value stops the process with one line naming the variable and the expected form.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

S = TypeVar("S")


class PluginSettingsError(ValueError):
    """A plugin's environment variable does not parse; the message is one line naming it."""


_FORMS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def read_settings(struct: type[S], prefix: str, env: Mapping[str, str] | None = None) -> S:
    """``struct`` from the environment variables ``prefix + FIELD`` (empty means unset)."""
    source = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for name in struct.__struct_fields__:  # type: ignore[attr-defined]
        value = source.get(f"{prefix}{name}".upper())
        if value is not None and value != "":
            raw[name] = value
    try:
        return msgspec.convert(raw, struct, strict=False)
    except msgspec.ValidationError as exc:
        field = str(exc).rsplit("$.", 1)[-1].rstrip("`")
        hint = struct.__annotations__.get(field, "")  # type: ignore[attr-defined]
        form = next((word for t, word in _FORMS.items() if t.__name__ in str(hint)), "a valid value")
        variable = f"{prefix}{field}".upper()
        raise PluginSettingsError(f"{variable} must be {form}, got {raw.get(field)!r}") from None
