"""Typed model options: a plugin's ``Options`` struct, checked before anything is charged.

A plugin declares ``class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True)``
(like ``llm.Options`` in simonw/llm, on msgspec instead of pydantic). The API converts the
request's ``options`` object into it before a job is queued; every problem is reported at once,
in class-validator's words as NestJS nests them (``options.resolution must be one of the
following values: 720p, 1080p``, ``options.property foo should not exist``), and
``GET /video-gen/models`` publishes each field's type, allowed values and default.
"""

from __future__ import annotations

import functools
import itertools
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from msgspec import inspect


class NoOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The options of a model that takes none: any key is refused."""


def options_type(plugin: Any) -> type:
    """A plugin's ``Options`` struct; ``NoOptions`` for a plugin (not a ``ModelPlugin``) without one."""
    return getattr(plugin, "Options", NoOptions)


@dataclass(frozen=True)
class OptionSpec:
    """One option as the catalogue shows it."""

    name: str
    type: str  # "string", "boolean", "integer", "number" or "array"
    allowed: tuple[Any, ...] | None  # the only values accepted, when the field is a Literal
    default: Any
    description: str = ""


_WORDS = {
    "string": "must be a string",
    "boolean": "must be a boolean value",
    "integer": "must be an integer number",
    "number": "must be a number conforming to the specified constraints",
    "array": "must be an array",
}


def _base(t: Any) -> Any:
    """``X | None`` -> ``X``: an optional option is ``None`` until the client sets it."""
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(t) if a is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return t


def _kind(t: Any) -> tuple[str, tuple[Any, ...] | None]:
    t = _base(t)
    if typing.get_origin(t) is Literal:
        values = typing.get_args(t)
        kinds = {"boolean" if isinstance(v, bool) else "integer" if isinstance(v, int) else "string" for v in values}
        if len(kinds) == 1:
            return kinds.pop(), values
    for python, kind in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if t is python:
            return kind, None
    if typing.get_origin(t) is list:
        _kind(typing.get_args(t)[0])  # the items must be one of the kinds above
        return "array", None
    raise TypeError(f"option type {t!r} is not supported: use str, bool, int, float, a Literal or a list of them")


@functools.cache
def _hints(options_type: type) -> dict[str, Any]:
    # Resolving the annotations costs more than checking the options; a class's never change.
    return typing.get_type_hints(options_type)


def describe(options_type: type) -> list[OptionSpec]:
    """The fields of an ``Options`` struct as the catalogue publishes them (``TypeError`` if unusable)."""
    info = inspect.type_info(options_type)
    if not isinstance(info, inspect.StructType):
        raise TypeError("Options must be a msgspec.Struct")
    if not info.forbid_unknown_fields:
        raise TypeError("Options must forbid unknown fields (forbid_unknown_fields=True): a typo must not be charged")
    hints = _hints(options_type)
    specs = []
    for f in info.fields:
        kind, allowed = _kind(hints[f.name])
        default = None if f.default is inspect.NODEFAULT else f.default
        specs.append(OptionSpec(f.name, kind, allowed, default))
    return specs


def option_messages(options_type: type, raw: dict[str, Any]) -> list[str]:
    """Every problem of ``raw`` as the ``options`` of this model, in class-validator's words."""
    hints = _hints(options_type)
    fields = set(options_type.__struct_fields__)  # type: ignore[attr-defined]
    messages = [f"options.property {key} should not exist" for key in raw if key not in fields]
    for name, value in raw.items():
        if name not in fields:
            continue
        try:
            msgspec.convert(value, hints[name], strict=True)
        except msgspec.ValidationError:
            kind, allowed = _kind(hints[name])
            if allowed is not None:
                shown = ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
                messages.append(f"options.{name} must be one of the following values: {shown}")
            else:
                messages.append(f"options.{name} {_WORDS[kind]}")
    if not messages:
        try:
            msgspec.convert(raw, options_type, strict=True)
        except msgspec.ValidationError as exc:  # a constraint the per-field check cannot see
            messages.append(f"options {exc}")
    return messages


def parse(options_type: type, raw: dict[str, Any] | None) -> Any:
    """``raw`` as an ``Options`` instance (``msgspec.ValidationError`` if it is not one)."""
    return msgspec.convert(raw or {}, options_type, strict=True)


def price_variants(options_type: type, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every combination of the options in ``names`` (Literals and booleans), for a price table."""
    specs = {s.name: s for s in describe(options_type)}
    choices = []
    for name in names:
        spec = specs[name]
        values = spec.allowed if spec.allowed is not None else (False, True) if spec.type == "boolean" else None
        if values is None:
            raise TypeError(f"price option {name!r} must be a Literal or a bool")
        choices.append([(name, v) for v in values])
    return [dict(combo) for combo in itertools.product(*choices)]
