"""What ``GET /video-gen/models`` and ``video-gen models`` show of one installed model."""

from __future__ import annotations

from dataclasses import dataclass

from models_registry import options as opts
from models_registry.base import ModelPlugin
from models_registry.options import OptionSpec, options_type
from models_registry.pricing import Price, price_table


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


def catalogue_entry(name: str, plugin: ModelPlugin, package: str, unavailable_reason: str | None) -> CatalogueEntry:
    """The entry of ``plugin``, loaded from ``package``; its costs with the default options."""
    defaults = opts.parse(options_type(plugin), {})
    return CatalogueEntry(
        name=name,
        durations=tuple(plugin.durations),
        default_duration=plugin.default_duration,
        cost={d: plugin.cost(d, defaults) for d in plugin.durations},
        timeout_seconds=float(plugin.timeout_seconds),
        description=getattr(plugin, "description", "") or "",
        package=package,
        options=opts.describe(options_type(plugin)),
        prices=price_table(plugin),
        unavailable_reason=unavailable_reason,
    )
