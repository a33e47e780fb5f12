"""Links handed out name the deployment's public address (``PUBLIC_URL``, ``S3_PUBLIC_ENDPOINT_URL``),
not the internal one the processes use (``http://minio:9000``, ``http://0.0.0.0:8000``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from service.core.settings import Settings
from service.storage.factory import storage_from_settings
from service.storage.s3 import S3Storage


@pytest.fixture
async def public_s3(moto_server: str, s3_bucket: str) -> AsyncIterator[S3Storage]:
    # The same moto server under another name: links must carry the public one and still work.
    port = urlsplit(moto_server).port
    settings = Settings(
        storage_url=f"s3://{s3_bucket}/pre",
        s3_endpoint_url=moto_server,
        s3_public_endpoint_url=f"http://localhost:{port}",
        s3_region="us-east-1",
        s3_path_style=True,
    )
    store = storage_from_settings(settings)
    assert isinstance(store, S3Storage)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_presigned_links_name_the_public_endpoint_and_download(public_s3: S3Storage, moto_server: str):
    await public_s3.put_bytes("videos/u1/v.mp4", b"public-bytes", content_type="video/mp4", metadata={})
    url = await public_s3.download_url("videos/u1/v.mp4", expires_in=120)
    port = urlsplit(moto_server).port
    assert url.startswith(f"http://localhost:{port}/{public_s3.bucket}/pre/videos/u1/v.mp4?")
    assert "127.0.0.1" not in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"public-bytes"


async def test_without_a_public_endpoint_links_name_the_endpoint(moto_server: str, s3_bucket: str):
    store = storage_from_settings(
        Settings(
            storage_url=f"s3://{s3_bucket}", s3_endpoint_url=moto_server, s3_region="us-east-1", s3_path_style=True
        )
    )
    await store.open()
    try:
        assert (await store.download_url("videos/u1/x.mp4", expires_in=60)).startswith(f"{moto_server}/{s3_bucket}/")
    finally:
        await store.close()


async def test_local_links_use_public_url(tmp_path: Path):
    store = storage_from_settings(
        Settings(storage_url=f"file://{tmp_path}", host="0.0.0.0", public_url="https://videos.example.com/")
    )
    await store.open()
    await store.put_bytes("videos/u1/a.mp4", b"x", content_type="video/mp4", metadata={})
    url = await store.download_url("videos/u1/a.mp4", expires_in=60)
    assert url.startswith("https://videos.example.com/video-gen/files/videos/u1/a.mp4?expires=")


@pytest.mark.parametrize(
    ("host", "public_url", "expected"),
    [
        ("0.0.0.0", None, "http://127.0.0.1:8000"),
        ("::", None, "http://[::1]:8000"),
        ("10.1.2.3", None, "http://10.1.2.3:8000"),
        ("0.0.0.0", "http://api.internal:8080/base/", "http://api.internal:8080/base"),
    ],
)
def test_public_base_url(host: str, public_url: str | None, expected: str):
    assert Settings(host=host, port=8000, public_url=public_url).public_base_url == expected


def test_public_settings_come_from_the_environment():
    settings = Settings.from_env(
        {"PUBLIC_URL": "https://api.example.com", "S3_PUBLIC_ENDPOINT_URL": "https://s3.example.com"}
    )
    assert settings.public_url == "https://api.example.com"
    assert settings.s3_public_endpoint_url == "https://s3.example.com"
