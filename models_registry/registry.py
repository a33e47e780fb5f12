"""The entry-point model registry.

Loaded once per process (API and workers), validated as it loads, read-only afterwards. A broken
or duplicate plugin stops the process with a message naming the package and the problem, because
a service that silently drops a paid model is worse than one that refuses to start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

from models_registry import options as opts
from models_registry.base import ENTRY_POINT_GROUP, ModelPlugin, parse_duration
from models_registry.catalogue import CatalogueEntry, catalogue_entry
from models_registry.errors import (
    InvalidOptions,
    ModelUnavailable,
    PluginError,
    UnknownModel,
    UnsupportedDuration,
)
from models_registry.options import NoOptions, OptionSpec, options_type
from models_registry.pricing import Price, price_table
from models_registry.validation import validate_plugin

# The registry's names before catalogue, pricing and validation had their own modules: third-party
# plugins and tools import them from here, so they stay importable from here.
__all__ = [
    "CatalogueEntry",
    "ModelRegistry",
    "NoOptions",
    "OptionSpec",
    "PluginError",
    "Price",
    "Resolved",
    "options_type",
    "parse_duration",
    "price_table",
    "validate_plugin",
]


@dataclass(frozen=True)
class Resolved:
    """What a request asks of a model, checked: the plugin, the duration and the ``Options``."""

    plugin: ModelPlugin
    duration: str
    options: Any

    @property
    def cost(self) -> int:
        return self.plugin.cost(self.duration, self.options)


def _origin(ep: EntryPoint | None, cls: type) -> str:
    if ep is not None and ep.dist is not None:
        return f"{ep.dist.name} (entry point {ep.name!r} = {ep.value!r})"
    return f"{cls.__module__}.{cls.__qualname__}"


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
        """Every model as the catalogue shows it, sorted by name."""
        return [
            catalogue_entry(name, self._plugins[name], self._origins[name], self.unavailable_reason(name))
            for name in self.names()
        ]

    async def open_all(self, settings: Any) -> None:
        """Run every plugin's ``open`` (per-process clients)."""
        for p in self._plugins.values():
            if hasattr(p, "open"):
                await p.open(settings)

    async def close_all(self) -> None:
        for p in self._plugins.values():
            if hasattr(p, "close"):
                await p.close()
