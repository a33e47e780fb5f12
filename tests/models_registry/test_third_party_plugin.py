"""A third-party plugin, really installed: examples/video-gen-example-plugin from wheel to video.

The example package is built and installed (not editable, so it has its own dist-info and entry
point like any package from an index), found by the registry through its entry point, offered by
``GET /video-gen/models``, run by a worker through the API, and removed at the end. The stack's
registry is loaded *after* the install, as a restarted service would.

It is installed into a directory of its own put on this process's path, not into the shared
environment: there, a ``video-gen worker`` another test started meanwhile (the suite runs in
parallel) found the entry point of a package half installed or half removed, failed to import it
and refused to start.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import Distribution, PackageNotFoundError, distribution, entry_points
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from models_registry.base import ENTRY_POINT_GROUP
from models_registry.registry import ModelRegistry
from models_registry.video import probe_video
from service.core.keys import Keys
from service.core.settings import Settings
from service.embedded import embedded_stack
from service.ledger import service as ledger
from tests.conftest import REDIS_URL, Api
from tests.factories import grant, image_request, seed_image

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "video-gen-example-plugin"
DIST_NAME = "video-gen-example-plugin"
MODEL = "example-slideshow"


def _uv_pip(*args: str) -> None:
    """``uv pip ARGS`` against the interpreter running the tests, failing with uv's own output."""
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` exports UV: the uv that started us
    assert uv, "uv is needed to install the example plugin"
    result = subprocess.run([uv, "pip", *args, "--python", sys.executable], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"uv pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _example_entry_points() -> list[str]:
    return [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == MODEL]


def _forget_imports() -> None:
    """Drop the example's modules and the finders' directory caches, so what is on disk now counts."""
    for name in [m for m in sys.modules if m == "video_gen_example" or m.startswith("video_gen_example.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """The example installed for this module, then removed and checked gone from entry points."""
    target = str(tmp_path_factory.mktemp("example-plugin"))
    try:
        # --reinstall-package also rebuilds: uv would otherwise reuse a wheel cached from older sources.
        _uv_pip("install", "--reinstall-package", DIST_NAME, "--target", target, str(EXAMPLE))
        sys.path.insert(0, target)
        _forget_imports()
        yield distribution(DIST_NAME)
    finally:
        if target in sys.path:
            sys.path.remove(target)
        shutil.rmtree(target, ignore_errors=True)
        _forget_imports()
        assert _example_entry_points() == []
        with pytest.raises(PackageNotFoundError):
            distribution(DIST_NAME)


@pytest.fixture
async def example_api(installed_example: Distribution, settings: Settings) -> AsyncIterator[Api]:
    """The whole stack with a registry loaded after the install, from entry points only."""
    async with embedded_stack(settings, registry=ModelRegistry.load()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            yield Api(stack, client)


async def _queued(api: Api) -> int:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = Keys(api.settings.redis_key_prefix)  # every model's jobs stream
        return sum([await client.xlen(keys.queue(m.decode())) for m in await client.smembers(keys.queues)])
    finally:
        await client.aclose()


def test_it_is_a_real_install_not_the_source_tree(installed_example: Distribution) -> None:
    [ep] = [ep for ep in installed_example.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert (ep.name, ep.value) == (MODEL, "video_gen_example:SlideshowModel")
    direct_url = json.loads(installed_example.read_text("direct_url.json") or "{}")
    assert not direct_url.get("dir_info", {}).get("editable", False)
    import video_gen_example

    module_path = Path(video_gen_example.__file__).resolve()
    assert EXAMPLE not in module_path.parents  # imported from site-packages, not examples/
    assert module_path.is_relative_to(Path(str(installed_example.locate_file(""))).resolve())


def test_the_registry_finds_it_through_its_entry_point(installed_example: Distribution) -> None:
    registry = ModelRegistry.load()
    assert MODEL in registry.names() and {"local", "veo3"} <= set(registry.names())
    [entry] = [e for e in registry.catalogue() if e.name == MODEL]
    assert entry.durations == ("4s", "6s") and entry.default_duration == "4s"
    assert entry.cost == {"4s": 100, "6s": 150}
    assert {(p.duration, p.options["fps"]): p.cost for p in entry.prices}[("6s", 24)] == 240
    assert entry.timeout_seconds == 60.0
    assert entry.package == (
        "video-gen-example-plugin (entry point 'example-slideshow' = 'video_gen_example:SlideshowModel')"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_catalogue_endpoint_offers_it(example_api: Api) -> None:
    r = await example_api.client.get("/video-gen/models", headers=example_api.auth("u1"))
    assert r.status_code == 200, r.text
    models = {m["name"]: m for m in r.json()["models"]}
    assert {"local", "veo3", MODEL} <= set(models)
    example = models[MODEL]
    assert example["durations"] == ["4s", "6s"]
    assert example["defaultDuration"] == "4s"
    assert example["cost"] == {"4s": 100, "6s": 150}
    assert example["timeoutSeconds"] == 60.0
    assert example["default"] is False  # DEFAULT_MODEL is still "local"
    assert example["available"] is True
    assert example["options"] == [
        {"name": "fps", "type": "integer", "allowed": [12, 24], "default": 12},
        {"name": "mirror", "type": "boolean", "allowed": None, "default": True},
    ]
    assert {(p["duration"], p["options"]["fps"]): p["cost"] for p in example["prices"]} == {
        ("4s", 12): 100,
        ("6s", 12): 150,
        ("4s", 24): 160,
        ("6s", 24): 240,
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_its_options_change_the_video_and_the_price(example_api: Api) -> None:
    await seed_image(example_api.settings)
    await grant("u1", 300)
    body = image_request(model=MODEL, duration="6s", options={"fps": 24, "mirror": False})
    r = await example_api.client.post("/video-gen/image-to-video", json=body, headers=example_api.auth("u1"))
    assert r.status_code == 200, r.text
    assert r.json()["credits"] == {"used": 240, "balance": 60.0}
    stored = Path(example_api.settings.storage_url.removeprefix("file://")) / r.json()["s3Key"]
    info = probe_video(stored)
    assert (info.frames, info.duration_seconds) == (6 * 24, 6.0)
    bad = image_request(model=MODEL, duration="4s", options={"fps": 30, "speed": 2})
    r = await example_api.client.post("/video-gen/image-to-video", json=bad, headers=example_api.auth("u1"))
    assert r.status_code == 400
    assert r.json()["message"] == [
        "options.property speed should not exist",
        "options.fps must be one of the following values: 12, 24",
    ]
    assert await ledger.balance_of("u1") == 60 and await _queued(example_api) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_six_second_generation_is_charged_its_price_and_lasts_six_seconds(example_api: Api) -> None:
    await seed_image(example_api.settings)
    await grant("u1", 200)
    r = await example_api.client.post(
        "/video-gen/image-to-video", json=image_request(model=MODEL, duration="6s"), headers=example_api.auth("u1")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert (body["model"], body["duration"]) == (MODEL, "6s")
    assert body["credits"] == {"used": 150, "balance": 50.0}
    stored = Path(example_api.settings.storage_url.removeprefix("file://")) / body["s3Key"]
    info = probe_video(stored)
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 320, 180, 6 * 12)
    assert info.duration_seconds == 6.0
    assert await ledger.balance_of("u1") == 50


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_duration_it_does_not_offer_is_a_spec_shaped_400(example_api: Api) -> None:
    await seed_image(example_api.settings)
    await grant("u1", 200)
    r = await example_api.client.post(
        "/video-gen/image-to-video", json=image_request(model=MODEL, duration="8s"), headers=example_api.auth("u1")
    )
    assert r.status_code == 400, r.text
    assert r.json() == {
        "statusCode": 400,
        "message": ["duration must be one of the following values: 4s, 6s"],
        "error": "Bad Request",
    }
    assert await ledger.balance_of("u1") == 200
    assert await _queued(example_api) == 0
