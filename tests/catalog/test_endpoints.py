"""``GET /video-gen/models``: every installed model with its options (types, allowed values,
defaults), its prices for every option the price depends on, and whether it can run here."""

from __future__ import annotations

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_without_fal_key_the_fal_models_are_listed_as_unavailable(api: Api) -> None:
    r = await api.client.get("/video-gen/models", headers=api.auth("u1"))
    assert r.status_code == 200, r.text
    models = {m["name"]: m for m in r.json()["models"]}
    for name in ("veo3", "veo3-fast", "veo3.1", "veo3.1-fast"):
        assert (models[name]["available"], models[name]["unavailableReason"]) == (False, "FAL_KEY is not set")
    assert models["local"]["available"] and models["local"]["default"]
    assert models["local"]["options"] == [] and models["local"]["prices"] == [
        {"duration": d, "options": {}, "cost": 750} for d in ("5s", "8s", "10s")
    ]


async def test_options_and_prices_are_published(api: Api) -> None:
    models = {m["name"]: m for m in (await api.client.get("/video-gen/models", headers=api.auth())).json()["models"]}
    veo31 = models["veo3.1"]
    options = {o["name"]: o for o in veo31["options"]}
    assert options["resolution"] == {
        "name": "resolution",
        "type": "string",
        "allowed": ["720p", "1080p", "4k"],
        "default": "720p",
    }
    assert options["generate_audio"] == {"name": "generate_audio", "type": "boolean", "allowed": None, "default": False}
    assert options["seed"] == {"name": "seed", "type": "integer", "allowed": None, "default": None}
    assert veo31["durations"] == ["4s", "6s", "8s"] and veo31["cost"] == {"4s": 400, "6s": 600, "8s": 800}
    prices = {
        (p["duration"], p["options"]["resolution"], p["options"]["generate_audio"]): p["cost"] for p in veo31["prices"]
    }
    assert len(prices) == 3 * 3 * 2 and prices[("8s", "4k", True)] == 2400 and prices[("4s", "1080p", False)] == 400
    veo3 = models["veo3"]
    assert veo3["cost"] == {"5s": 750, "8s": 750, "10s": 750}
    assert {(p["duration"], p["options"]["generate_audio"]): p["cost"] for p in veo3["prices"]}[("8s", True)] == 1500
