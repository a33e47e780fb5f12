"""The application around the endpoints: rate limits, probes, metrics, OpenAPI, stray routes."""

from __future__ import annotations

import httpx
import pytest
from msgspec.structs import replace

from service.embedded import embedded_stack
from tests.conftest import Api
from tests.factories import TestModels, image_request, token_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_rate_limit_answers_a_spec_shaped_429(settings) -> None:
    settings = replace(settings, rate_limit_per_minute=2)
    async with embedded_stack(settings, registry=TestModels.registry(), workers=0) as stack:
        auth = {"Authorization": f"Bearer {token_for(settings, 'u1')}"}
        async with httpx.AsyncClient(base_url=stack.url) as client:
            codes = [(await client.get("/video-gen/models", headers=auth)).status_code for _ in range(3)]
            limited = await client.get("/video-gen/models", headers=auth)
            other = await client.get(
                "/video-gen/models", headers={"Authorization": f"Bearer {token_for(settings, 'u2')}"}
            )
    assert codes[:2] == [200, 200] and codes[2] == 429
    assert limited.json() == {"statusCode": 429, "message": "Too Many Requests", "error": "Too Many Requests"}
    assert other.status_code == 200  # limits are per caller


async def test_health_metrics_and_schema(api: Api) -> None:
    live = await api.client.get("/health/live")
    ready = await api.client.get("/health/ready")
    assert live.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json() | {"usableModels": []} == {
        "status": "ok",
        "redis": "ok",
        "database": "ok",
        "storage": "ok",
        "models": "ok",
        "usableModels": [],
    }
    raw = await api.client.get("/schema/openapi.json")
    assert raw.status_code == 200, raw.text[:500]
    schema = raw.json()
    operation = schema["paths"]["/video-gen/image-to-video"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"Prefer", "Idempotency-Key"} <= headers
    assert "bearer" in str(schema["components"]["securitySchemes"]).lower()
    await api.client.get("/video-gen/models", headers=api.auth())
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200 and "video_gen_requests_total" in metrics.text


async def test_unknown_routes_and_methods_are_spec_shaped(api: Api) -> None:
    missing = await api.client.get("/nope", headers=api.auth())
    wrong = await api.client.get("/video-gen/image-to-video", headers=api.auth())
    assert missing.status_code == 404 and set(missing.json()) == {"statusCode", "message", "error"}
    assert wrong.status_code == 405 and wrong.json()["error"] == "Method Not Allowed"


async def test_prefer_respond_async_is_read_from_the_header(api: Api) -> None:
    headers = {**api.auth(), "Prefer": "respond-async"}
    r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=headers)
    assert r.status_code == 202
    assert r.json()["statusUrl"] == f"/video-gen/jobs/{r.json()['jobId']}"
