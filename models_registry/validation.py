"""A plugin checked against the contract in ``models_registry.base`` as the registry loads it.

Every problem is a ``PluginError`` naming the plugin and where it came from: a broken plugin stops
the process at start instead of failing a paid request later."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from models_registry import options as opts
from models_registry.base import ModelPlugin, parse_duration
from models_registry.errors import PluginError
from models_registry.options import options_type
from models_registry.pricing import price_table

CONTRACT = ("name", "durations", "default_duration", "timeout_seconds", "cost", "generate")


def validate_plugin(plugin: Any, origin: str) -> None:
    """Check a plugin instance against the contract in ``models_registry.base``."""
    for attr in CONTRACT:
        if not hasattr(plugin, attr):
            raise PluginError(f"model plugin from {origin} has no {attr!r}")
    if not isinstance(plugin.name, str) or not plugin.name:
        raise PluginError(f"model plugin from {origin}: name must be a non-empty string")
    where = f"model plugin {plugin.name!r} from {origin}"
    _check_durations(plugin, where)
    _check_limits(plugin, where)
    try:
        opts.describe(options_type(plugin))
        opts.parse(options_type(plugin), {})
    except (TypeError, msgspec.ValidationError) as exc:
        raise PluginError(f"{where}: Options: {exc}") from None
    generate = getattr(type(plugin), "generate", None)
    if generate is ModelPlugin.generate:
        raise PluginError(f"{where}: generate is not implemented")
    if not inspect.iscoroutinefunction(plugin.generate):
        raise PluginError(f"{where}: generate must be async")
    _check_costs(plugin, where)


def _check_durations(plugin: Any, where: str) -> None:
    if isinstance(plugin.durations, str):  # ("8s") without its comma is a string, not a tuple
        raise PluginError(f"{where}: durations must be a tuple of strings, not the string {plugin.durations!r}")
    durations = tuple(plugin.durations)
    if not durations:
        raise PluginError(f"{where} offers no durations")
    for d in durations:
        try:
            parse_duration(d)
        except (ValueError, AttributeError):  # AttributeError: not a string at all, e.g. 8
            raise PluginError(f"{where}: bad duration {d!r}") from None
    if plugin.default_duration not in durations:
        raise PluginError(f"{where}: default duration {plugin.default_duration!r} is not one of {list(durations)}")


def _check_limits(plugin: Any, where: str) -> None:
    timeout = plugin.timeout_seconds
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise PluginError(f"{where}: timeout_seconds must be a positive number, not {timeout!r}")
    slots = getattr(plugin, "max_concurrency", None)
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        raise PluginError(f"{where}: max_concurrency must be a positive int (or None), not {slots!r}")


def _check_costs(plugin: Any, where: str) -> None:
    try:
        table = price_table(plugin)
    except Exception as exc:  # e.g. ModelPlugin.cost not overridden, or cost(duration) alone
        raise PluginError(f"{where}: cost(duration, options) failed: {exc!r}") from exc
    for price in table:
        if not isinstance(price.cost, int) or isinstance(price.cost, bool) or price.cost < 0:
            raise PluginError(f"{where}: cost({price.duration!r}, {price.options}) must be an int >= 0")
