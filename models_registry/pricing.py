"""A model's price table: the cost of every duration with every combination of the options its
cost depends on (``price_options``), the others at their defaults. The catalogue publishes it and
validation checks every entry is a whole number of credits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from models_registry import options as opts
from models_registry.options import options_type


@dataclass(frozen=True)
class Price:
    """The cost of one duration with one combination of the options the cost depends on."""

    duration: str
    options: dict[str, Any]
    cost: int


def price_table(plugin: Any) -> list[Price]:
    """The cost of every duration with every combination of ``price_options`` (defaults otherwise)."""
    kind = options_type(plugin)
    table = []
    for variant in opts.price_variants(kind, tuple(getattr(plugin, "price_options", ()))):
        chosen = msgspec.convert(variant, kind)
        table.extend(Price(d, variant, plugin.cost(d, chosen)) for d in plugin.durations)
    return table
