"""S3Storage against moto's S3 server over real HTTP (aiobotocore, presigned URLs, multipart)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.storage.base import InvalidKey, ObjectNotFound, ObjectTooLarge
from service.storage.s3 import PART_SIZE, S3Storage

MIB = 1024 * 1024


@pytest.fixture
async def storage(moto_server: str, s3_bucket: str) -> AsyncIterator[S3Storage]:
    store = S3Storage(s3_bucket, endpoint_url=moto_server, region="us-east-1", path_style=True)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def spy(
    monkeypatch: pytest.MonkeyPatch,
    client,
    name: str,
    fail_on_part: int | None = None,
    exc: BaseException | None = None,
) -> list[dict]:
    """Record the calls to one client method; optionally fail the call for a given part number."""
    real = getattr(client, name)
    calls: list[dict] = []

    async def wrapper(**kwargs):
        calls.append(kwargs)
        if fail_on_part is not None and kwargs.get("PartNumber") == fail_on_part:
            raise exc or ConnectionError("injected upload failure")
        return await real(**kwargs)

    monkeypatch.setattr(client, name, wrapper)
    return calls


async def assert_nothing_left(storage: S3Storage) -> None:
    listing = await storage.client.list_objects_v2(Bucket=storage.bucket)
    assert listing.get("KeyCount", 0) == 0
    uploads = await storage.client.list_multipart_uploads(Bucket=storage.bucket)
    assert uploads.get("Uploads", []) == []


async def test_put_bytes_read_round_trip_with_content_type_and_metadata(storage: S3Storage):
    await storage.put_bytes("images/u1/a.png", b"png-bytes", content_type="image/png", metadata={"owner": "u1"})
    assert await storage.read("images/u1/a.png", max_bytes=9) == b"png-bytes"
    assert await storage.exists("images/u1/a.png")
    head = await storage.client.head_object(Bucket=storage.bucket, Key="images/u1/a.png")
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"owner": "u1"}
    await storage.delete("images/u1/a.png")
    assert not await storage.exists("images/u1/a.png")


async def test_prefix_is_prepended(moto_server: str, s3_bucket: str):
    store = S3Storage(s3_bucket, "/tenant/a/", endpoint_url=moto_server, region="us-east-1", path_style=True)
    await store.open()
    try:
        await store.put_bytes("x.bin", b"1", content_type="application/octet-stream", metadata={})
        listing = await store.client.list_objects_v2(Bucket=s3_bucket)
        assert [item["Key"] for item in listing["Contents"]] == ["tenant/a/x.bin"]
        assert await store.read("x.bin", max_bytes=1) == b"1"
    finally:
        await store.close()


async def test_too_large_is_refused_from_head_without_downloading(storage: S3Storage, monkeypatch: pytest.MonkeyPatch):
    await storage.put_bytes("big.bin", b"x" * 100, content_type="application/octet-stream", metadata={})
    gets = spy(monkeypatch, storage.client, "get_object")
    with pytest.raises(ObjectTooLarge) as info:
        await storage.read("big.bin", max_bytes=99)
    assert (info.value.size, info.value.limit) == (100, 99)
    assert gets == []


async def test_body_longer_than_head_reported_is_refused(storage: S3Storage, monkeypatch: pytest.MonkeyPatch):
    await storage.put_bytes("grows.bin", b"x" * 100, content_type="application/octet-stream", metadata={})
    real_head = storage.client.head_object

    async def stale_head(**kwargs):
        return {**await real_head(**kwargs), "ContentLength": 10}

    monkeypatch.setattr(storage.client, "head_object", stale_head)
    with pytest.raises(ObjectTooLarge) as info:
        await storage.read("grows.bin", max_bytes=50)
    assert info.value.size == 51


async def test_read_passes_the_bytes_to_the_check(storage: S3Storage):
    await storage.put_bytes("images/u1/a.bin", b"bytes", content_type="application/octet-stream", metadata={})
    seen: list[bytes] = []
    assert await storage.read("images/u1/a.bin", max_bytes=9, check=seen.append) == b"bytes"
    assert seen == [b"bytes"]

    def refuse(data: bytes) -> None:
        raise ValueError("not an image")

    with pytest.raises(ValueError, match="not an image"):
        await storage.read("images/u1/a.bin", max_bytes=9, check=refuse)


async def test_missing_object(storage: S3Storage):
    with pytest.raises(ObjectNotFound):
        await storage.read("images/u1/none.png", max_bytes=10)
    assert not await storage.exists("images/u1/none.png")
    await storage.delete("images/u1/none.png")


@pytest.mark.parametrize("key", ["../x", "a/../x", "/abs", "a\x00b", "a//b", "", "a/", "%2e%2e/x"])
async def test_malformed_keys_are_refused(storage: S3Storage, key: str):
    with pytest.raises(InvalidKey):
        await storage.read(key, max_bytes=10)
    with pytest.raises(InvalidKey):
        await storage.put_bytes(key, b"x", content_type="text/plain", metadata={})
    with pytest.raises(InvalidKey):
        await storage.download_url(key, expires_in=60)
    await assert_nothing_left(storage)


async def test_small_file_is_one_put_object(storage: S3Storage, scratch: Path, monkeypatch: pytest.MonkeyPatch):
    source = scratch / "small.mp4"
    source.write_bytes(b"v" * PART_SIZE)
    creates = spy(monkeypatch, storage.client, "create_multipart_upload")
    await storage.put_file("videos/s.mp4", source, content_type="video/mp4", metadata={"job": "j1"})
    assert creates == []
    head = await storage.client.head_object(Bucket=storage.bucket, Key="videos/s.mp4")
    assert (head["ContentLength"], head["ContentType"], head["Metadata"]) == (PART_SIZE, "video/mp4", {"job": "j1"})


async def test_large_file_is_uploaded_in_parts_and_reassembled(
    storage: S3Storage, scratch: Path, monkeypatch: pytest.MonkeyPatch
):
    payload = os.urandom(20 * MIB + 123)
    source = scratch / "large.mp4"
    source.write_bytes(payload)
    parts = spy(monkeypatch, storage.client, "upload_part")
    await storage.put_file("videos/u1/big.mp4", source, content_type="video/mp4", metadata={"job": "j2"})

    assert [call["PartNumber"] for call in parts] == [1, 2, 3]
    assert all(len(call["Body"]) <= PART_SIZE for call in parts)
    head = await storage.client.head_object(Bucket=storage.bucket, Key="videos/u1/big.mp4")
    assert head["ContentLength"] == len(payload)
    assert (head["ContentType"], head["Metadata"]) == ("video/mp4", {"job": "j2"})
    data = await storage.read("videos/u1/big.mp4", max_bytes=len(payload))
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("exc", [ConnectionError("injected upload failure"), asyncio.CancelledError()])
async def test_failed_multipart_leaves_no_object_and_no_pending_upload(
    storage: S3Storage, scratch: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
):
    source = scratch / "large.mp4"
    source.write_bytes(os.urandom(20 * MIB))
    aborts = spy(monkeypatch, storage.client, "abort_multipart_upload")
    spy(monkeypatch, storage.client, "upload_part", fail_on_part=2, exc=exc)
    with pytest.raises(type(exc)):
        await storage.put_file("videos/u1/broken.mp4", source, content_type="video/mp4", metadata={})
    assert len(aborts) == 1
    assert not await storage.exists("videos/u1/broken.mp4")
    await assert_nothing_left(storage)


async def test_presigned_url_downloads_the_bytes(storage: S3Storage):
    await storage.put_bytes("videos/u1/p.mp4", b"presigned-bytes", content_type="video/mp4", metadata={})
    url = await storage.download_url("videos/u1/p.mp4", expires_in=300)
    assert "X-Amz-Expires=300" in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"presigned-bytes"
    assert response.headers["content-type"] == "video/mp4"


async def test_close_is_idempotent_and_client_requires_open(moto_server: str, s3_bucket: str):
    store = S3Storage(s3_bucket, endpoint_url=moto_server, region="us-east-1", path_style=True)
    with pytest.raises(RuntimeError, match="not open"):
        await store.exists("a")
    await store.open()
    client = store.client
    await store.open()
    assert store.client is client
    await store.close()
    await store.close()


async def test_check_reaches_the_bucket(moto_server: str, s3_bucket: str):
    store = S3Storage(s3_bucket, endpoint_url=moto_server, region="us-east-1", path_style=True)
    missing = S3Storage("no-such-bucket-here", endpoint_url=moto_server, region="us-east-1", path_style=True)
    await store.open()
    await missing.open()
    try:
        await store.check()
        with pytest.raises(Exception, match="the storage bucket does not exist"):
            await missing.check()
    finally:
        await store.close()
        await missing.close()


async def test_a_missing_bucket_is_never_a_missing_image(moto_server: str, storage: S3Storage) -> None:
    """A deleted or misnamed bucket is a 503 for the caller and fails the readiness check; only a
    missing key in an existing bucket is 'Source image not found'."""
    from service.core.errors import NotFound, ServiceUnavailable
    from service.storage.images import load_source_image
    from service.storage.s3_errors import BucketMissing

    missing = S3Storage("video-gen-no-such-bucket", endpoint_url=moto_server, region="us-east-1", path_style=True)
    await missing.open()
    try:
        with pytest.raises(BucketMissing):
            await missing.check()
        with pytest.raises(ServiceUnavailable, match="the storage bucket does not exist"):
            await load_source_image(
                missing, "images/u1/a.png", user_id="u1", prefix_template="images/{user_id}/", max_bytes=1024
            )
    finally:
        await missing.close()
    await storage.check()
    with pytest.raises(NotFound, match="Source image not found: images/u1/a.png"):
        await load_source_image(
            storage, "images/u1/a.png", user_id="u1", prefix_template="images/{user_id}/", max_bytes=1024
        )


def test_the_api_refuses_to_start_on_a_missing_bucket(moto_server: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REDIS_URL

    env = {
        **os.environ,
        "JWT_SECRET": "s3-startup-secret-at-least-32-bytes-0123",
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "STORAGE_URL": "s3://video-gen-no-such-bucket",
        "S3_ENDPOINT_URL": moto_server,
        "S3_PATH_STYLE": "true",
        "S3_REGION": "us-east-1",
    }
    subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "video-gen: STORAGE_URL names the bucket 'video-gen-no-such-bucket', which does not exist: create it, "
        "or fix STORAGE_URL (and S3_ENDPOINT_URL)"
    )
