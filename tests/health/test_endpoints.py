"""The probes: ``/health/ready`` names the part that is down (Redis, database, storage, models)
without its exception text; ``/health/live`` only says the process is up."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from models_registry.registry import ModelRegistry
from service.embedded import embedded_stack
from tests.conftest import Api, make_settings
from tests.factories import FailingModel


class UnreadyModel(FailingModel):
    name = "unready"

    def readiness(self) -> str | None:
        return "UNREADY_KEY is not set"


async def test_ready_names_a_lost_storage_without_its_reason(api: Api) -> None:
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert "local" in ready.json()["usableModels"]
    root = Path(api.settings.storage_url.removeprefix("file://"))
    await asyncio.to_thread(shutil.rmtree, root)
    try:
        down = await api.client.get("/health/ready")
        assert down.status_code == 503
        body = down.json()
        assert (body["status"], body["storage"], body["redis"], body["database"], body["models"]) == (
            "unavailable",
            "unavailable",
            "ok",
            "ok",
            "ok",
        )
        assert str(root) not in down.text and "writable" not in down.text
    finally:
        await asyncio.to_thread(root.mkdir, parents=True)
    assert (await api.client.get("/health/ready")).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ready_wants_one_usable_model(database_url: str, redis_prefix: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, redis_prefix, tmp_path, default_model="unready")
    registry = ModelRegistry({"unready": UnreadyModel()}, {"unready": "tests"})
    async with embedded_stack(settings, registry=registry) as stack:
        async with httpx.AsyncClient(base_url=stack.url) as client:
            down = await client.get("/health/ready")
            live = await client.get("/health/live")
    assert down.status_code == 503
    assert down.json() == {
        "status": "unavailable",
        "redis": "ok",
        "database": "ok",
        "storage": "ok",
        "models": "unavailable",
        "usableModels": [],
    }
    assert "UNREADY_KEY" not in down.text
    assert live.status_code == 200
