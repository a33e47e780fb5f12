"""The whole pipeline with ``STORAGE_URL=s3://...`` against moto's S3 server on loopback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
from aiobotocore.session import get_session

from models_registry.video import probe_video
from service.embedded import embedded_stack
from service.ledger import service as ledger
from tests.conftest import make_settings
from tests.factories import TestModels, grant, image_request, make_image, seed_image, token_for


@pytest.fixture
def s3_settings(sqlite_url: str, redis_prefix: str, tmp_path: Path, moto_server: str, s3_bucket: str):
    return make_settings(
        sqlite_url,
        redis_prefix,
        tmp_path,
        storage_url=f"s3://{s3_bucket}/media",
        s3_endpoint_url=moto_server,
        s3_region="us-east-1",
        s3_path_style=True,
    )


async def test_generation_stores_the_video_in_s3(s3_settings, moto_server: str, s3_bucket: str) -> None:
    settings = s3_settings
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        await seed_image(settings)
        await grant("u1", 750)
        auth = {"Authorization": f"Bearer {token_for(settings, 'u1')}"}
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            r = await client.post("/video-gen/image-to-video", json=image_request(duration="5s"), headers=auth)
            assert r.status_code == 200, r.text
            key = r.json()["s3Key"]
            history = (await client.get("/video-gen/generations", headers=auth)).json()
            url = history["items"][0]["downloadUrl"]
            assert "X-Amz-Signature" in url  # presigned by S3, not served by the API
            download = await client.get(url)
    assert key.startswith("videos/u1/")
    async with get_session().create_client("s3", endpoint_url=moto_server, region_name="us-east-1") as s3:
        head = await s3.head_object(Bucket=s3_bucket, Key=f"media/{key}")
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"]["generation-id"] in key and head["Metadata"]["model"] == "local"
    assert download.status_code == 200
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(download.content)
        f.flush()
        info = probe_video(f.name)
    assert info.codec == "h264" and info.frames == 5 * 12 and abs(info.duration_seconds - 5.0) < 1e-6


async def test_a_non_image_in_s3_is_refused_before_any_credit_moves(s3_settings) -> None:
    settings = s3_settings
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        await seed_image(settings, data=b"%PDF-1.4 definitely not an image" * 10)
        await grant("u1", 750)
        auth = {"Authorization": f"Bearer {token_for(settings, 'u1')}"}
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            r = await client.post("/video-gen/image-to-video", json=image_request(), headers=auth)
            missing = await client.post(
                "/video-gen/image-to-video", json=image_request(id="images/u1/nope.png"), headers=auth
            )
    assert r.status_code == 400
    assert r.json()["message"] == "Source image must be a PNG, JPEG or WebP image"
    assert missing.status_code == 404
    assert missing.json()["message"] == "Source image not found: images/u1/nope.png"
    assert await ledger.balance_of("u1") == 750


async def test_an_oversized_source_is_refused_by_its_size(s3_settings) -> None:
    from msgspec.structs import replace

    settings = replace(s3_settings, max_source_bytes=1000)
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        await seed_image(settings, data=make_image(width=400, height=300))
        await grant("u1", 750)
        auth = {"Authorization": f"Bearer {token_for(settings, 'u1')}"}
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            r = await client.post("/video-gen/image-to-video", json=image_request(), headers=auth)
    assert r.status_code == 413
    assert r.json()["error"] == "Payload Too Large"
    assert await ledger.balance_of("u1") == 750
