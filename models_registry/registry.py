"""The entry-point model registry.

Loaded once per process (API and workers), validated as it loads, read-only afterwards. A broken
or duplicate plugin stops the process with a message naming the package and the problem, because
a service that silently drops a paid model is worse than one that refuses to start.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

import msgspec

from models_registry import options as opts
from models_registry.base import ENTRY_POINT_GROUP, ModelPlugin, parse_duration
from models_registry.errors import InvalidOptions, ModelUnavailable, UnknownModel, UnsupportedDuration
from models_registry.options import NoOptions, OptionSpec


class PluginError(RuntimeError):
    """A plugin failed to load or validate."""


@dataclass(frozen=True)
class Price:
    """The cost of one duration with one combination of the options the cost depends on."""

    duration: str
    options: dict[str, Any]
    cost: int


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    durations: tuple[str, ...]
    default_duration: str
    cost: dict[str, int]  # per duration, with the default options
    timeout_seconds: float
    description: str
    package: str
    options: list[OptionSpec]
    prices: list[Price]
    unavailable_reason: str | None


@dataclass(frozen=True)
class Resolved:
    """What a request asks of a model, checked: the plugin, the duration and the ``Options``."""

    plugin: ModelPlugin
    duration: str
    options: Any

    @property
    def cost(self) -> int:
        return self.plugin.cost(self.duration, self.options)


def options_type(plugin: Any) -> type:
    return getattr(plugin, "Options", NoOptions)


def price_table(plugin: Any) -> list[Price]:
    """The cost of every duration with every combination of ``price_options`` (defaults otherwise)."""
    kind = options_type(plugin)
    table = []
    for variant in opts.price_variants(kind, tuple(getattr(plugin, "price_options", ()))):
        chosen = msgspec.convert(variant, kind)
        table.extend(Price(d, variant, plugin.cost(d, chosen)) for d in plugin.durations)
    return table


def _origin(ep: EntryPoint | None, cls: type) -> str:
    if ep is not None and ep.dist is not None:
        return f"{ep.dist.name} (entry point {ep.name!r} = {ep.value!r})"
    return f"{cls.__module__}.{cls.__qualname__}"


def validate_plugin(plugin: Any, origin: str) -> None:
    """Check a plugin instance against the contract in ``models_registry.base``."""
    for attr in ("name", "durations", "default_duration", "timeout_seconds", "cost", "generate"):
        if not hasattr(plugin, attr):
            raise PluginError(f"model plugin from {origin} has no {attr!r}")
    if not isinstance(plugin.name, str) or not plugin.name:
        raise PluginError(f"model plugin from {origin}: name must be a non-empty string")
    where = f"model plugin {plugin.name!r} from {origin}"
    _check_durations(plugin, where)
    timeout = plugin.timeout_seconds
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise PluginError(f"{where}: timeout_seconds must be a positive number, not {timeout!r}")
    slots = getattr(plugin, "max_concurrency", None)
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        raise PluginError(f"{where}: max_concurrency must be a positive int (or None), not {slots!r}")
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


def _check_costs(plugin: Any, where: str) -> None:
    try:
        table = price_table(plugin)
    except Exception as exc:  # e.g. ModelPlugin.cost not overridden, or cost(duration) alone
        raise PluginError(f"{where}: cost(duration, options) failed: {exc!r}") from exc
    for price in table:
        if not isinstance(price.cost, int) or isinstance(price.cost, bool) or price.cost < 0:
            raise PluginError(f"{where}: cost({price.duration!r}, {price.options}) must be an int >= 0")


class ModelRegistry:
    """Name -> plugin instance, fixed at load time."""

    def __init__(self, plugins: Mapping[str, ModelPlugin], origins: Mapping[str, str]) -> None:
        self._plugins = MappingProxyType(dict(plugins))
        self._origins = MappingProxyType(dict(origins))

    @classmethod
    def load(cls, *, extra: Iterable[type] = (), group: str = ENTRY_POINT_GROUP) -> ModelRegistry:
        """Load every plugin of ``group`` (plus ``extra`` classes, for tests and embedding)."""
        found: list[tuple[EntryPoint | None, type]] = []
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                found.append((ep, ep.load()))
            except Exception as exc:  # a broken third-party package must name itself
                dist = ep.dist.name if ep.dist else "?"
                raise PluginError(f"model plugin {ep.name!r} from package {dist} failed to import: {exc}") from exc
        found.extend((None, c) for c in extra)
        plugins: dict[str, ModelPlugin] = {}
        origins: dict[str, str] = {}
        for ep, plugin_cls in found:
            origin = _origin(ep, plugin_cls)
            try:
                plugin = plugin_cls()
            except Exception as exc:
                raise PluginError(f"model plugin from {origin} could not be created: {exc}") from exc
            validate_plugin(plugin, origin)
            if plugin.name in plugins:
                raise PluginError(f"duplicate model name {plugin.name!r}: {origin} and {origins[plugin.name]}")
            plugins[plugin.name] = plugin
            origins[plugin.name] = origin
        return cls(plugins, origins)

    def names(self) -> list[str]:
        return sorted(self._plugins)

    def __contains__(self, name: str) -> bool:
        return name in self._plugins

    def get(self, name: str) -> ModelPlugin:
        """The plugin called ``name``; ``UnknownModel`` (listing the known ones) otherwise."""
        try:
            return self._plugins[name]
        except KeyError:
            raise UnknownModel(name, self.names()) from None

    def resolve(self, name: str, duration: str | None, options: dict[str, Any] | None = None) -> Resolved:
        """The checked request for a model, refusing what it does not offer or cannot run here."""
        plugin = self.get(name)
        effective = duration or plugin.default_duration
        if effective not in plugin.durations:
            raise UnsupportedDuration(effective, tuple(plugin.durations))
        if messages := opts.option_messages(options_type(plugin), options or {}):
            raise InvalidOptions(messages)
        if reason := self.unavailable_reason(name):
            raise ModelUnavailable(name, reason)
        return Resolved(plugin, effective, opts.parse(options_type(plugin), options))

    def unavailable_reason(self, name: str) -> str | None:
        """Why the model ``name`` cannot run in this process, or ``None`` when it can."""
        readiness = getattr(self._plugins[name], "readiness", None)
        return readiness() if readiness is not None else None

    def default_model(self, preferred: str | None = None) -> str:
        """``preferred`` (``DEFAULT_MODEL``) if set, else the available model ranked highest."""
        if preferred:
            return preferred
        ready = [n for n in self.names() if self.unavailable_reason(n) is None] or self.names()
        return max(ready, key=lambda n: (getattr(self._plugins[n], "default_rank", 0), n), default="local")

    def catalogue(self) -> list[CatalogueEntry]:
        out = []
        for name in self.names():
            p = self._plugins[name]
            defaults = opts.parse(options_type(p), {})
            out.append(
                CatalogueEntry(
                    name=name,
                    durations=tuple(p.durations),
                    default_duration=p.default_duration,
                    cost={d: p.cost(d, defaults) for d in p.durations},
                    timeout_seconds=float(p.timeout_seconds),
                    description=getattr(p, "description", "") or "",
                    package=self._origins[name],
                    options=opts.describe(options_type(p)),
                    prices=price_table(p),
                    unavailable_reason=self.unavailable_reason(name),
                )
            )
        return out

    async def open_all(self, settings: Any) -> None:
        """Run every plugin's ``open`` (per-process clients)."""
        for p in self._plugins.values():
            if hasattr(p, "open"):
                await p.open(settings)

    async def close_all(self) -> None:
        for p in self._plugins.values():
            if hasattr(p, "close"):
                await p.close()
