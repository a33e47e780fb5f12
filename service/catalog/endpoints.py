"""``GET /video-gen/models``: the registry's catalogue."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from models_registry.registry import ModelRegistry
from service.core.settings import Settings


class ModelOut(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    durations: list[str]
    default_duration: str
    cost: dict[str, int]
    timeout_seconds: float
    description: str
    default: bool


class ModelCatalogue(msgspec.Struct, kw_only=True):
    models: list[ModelOut]


class CatalogueController(Controller):
    path = "/video-gen/models"
    tags = ["models"]

    @get("/", summary="List the installed model plugins")
    async def list_models(
        self, registry: NamedDependency[ModelRegistry], settings: NamedDependency[Settings]
    ) -> ModelCatalogue:
        default = settings.model_default
        return ModelCatalogue(
            models=[
                ModelOut(
                    name=e.name,
                    durations=list(e.durations),
                    default_duration=e.default_duration,
                    cost=e.cost,
                    timeout_seconds=e.timeout_seconds,
                    description=e.description,
                    default=e.name == default,
                )
                for e in registry.catalogue()
            ]
        )
