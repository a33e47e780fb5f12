"""``GET /video-gen/models``: the registry's catalogue, with each model's options and prices."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from models_registry.registry import CatalogueEntry, ModelRegistry
from service.core.settings import Settings


class OptionOut(msgspec.Struct, rename="camel", kw_only=True):
    """One field of the model's ``options`` object."""

    name: str
    type: str
    """``string``, ``boolean``, ``integer``, ``number`` or ``array``."""
    allowed: list[Any] | None
    """The only values accepted, when the option is an enumeration."""
    default: Any
    """Used when the request does not set it (``null``: the provider's own default)."""


class PriceOut(msgspec.Struct, kw_only=True):
    """What one clip costs for a duration and the options the price depends on."""

    duration: str
    options: dict[str, Any]
    cost: int


class ModelOut(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    durations: list[str]
    default_duration: str
    cost: dict[str, int]
    """Credits per duration with the default options."""
    prices: list[PriceOut]
    """Credits for every duration and every value of the options the price depends on."""
    options: list[OptionOut]
    timeout_seconds: float
    description: str
    default: bool
    available: bool
    """False when the model cannot run on this server (``unavailableReason`` says why); requests
    naming it are refused with a 400 before any charge."""
    unavailable_reason: str | None


class ModelCatalogue(msgspec.Struct, kw_only=True):
    models: list[ModelOut]


def _model(entry: CatalogueEntry, default: str) -> ModelOut:
    return ModelOut(
        name=entry.name,
        durations=list(entry.durations),
        default_duration=entry.default_duration,
        cost=entry.cost,
        prices=[PriceOut(duration=p.duration, options=p.options, cost=p.cost) for p in entry.prices],
        options=[
            OptionOut(name=o.name, type=o.type, allowed=list(o.allowed) if o.allowed else None, default=o.default)
            for o in entry.options
        ],
        timeout_seconds=entry.timeout_seconds,
        description=entry.description,
        default=entry.name == default,
        available=entry.unavailable_reason is None,
        unavailable_reason=entry.unavailable_reason,
    )


class CatalogueController(Controller):
    path = "/video-gen/models"
    tags = ["models"]

    @get("/", summary="List the installed model plugins, their options and prices")
    async def list_models(
        self, registry: NamedDependency[ModelRegistry], settings: NamedDependency[Settings]
    ) -> ModelCatalogue:
        default = registry.default_model(settings.default_model)
        return ModelCatalogue(models=[_model(e, default) for e in registry.catalogue()])
