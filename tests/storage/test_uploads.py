"""``POST /video-gen/uploads`` and the upload it hands out, through HTTP: local storage (on SQLite
and PostgreSQL) and S3 (moto's server): upload, generate with the returned id, download (local
links answer ``Range``); and the refusals (type, size, a tampered or expired link, a body that is
not what was signed)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiobotocore.session import get_session

from service.embedded import embedded_stack
from service.storage.signing import sign_upload, verify_upload_signature
from tests.conftest import Api, make_settings
from tests.factories import TestModels, grant, image_request, make_image, token_for

PNG = make_image(width=160, height=90)


async def upload(api: Api, content_type: str = "image/png", length: int = len(PNG), user: str = "u1") -> httpx.Response:
    body = {"contentType": content_type, "contentLength": length}
    return await api.client.post("/video-gen/uploads", json=body, headers=api.auth(user))


async def test_upload_generate_download_with_local_storage(api: Api) -> None:
    await grant("u1", 750)
    r = await upload(api)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"id", "uploadUrl", "method", "headers", "expiresAt"}
    assert out["id"].startswith("images/u1/") and out["id"].endswith(".png") and out["method"] == "PUT"
    assert out["headers"] == {"Content-Type": "image/png"}
    put = await api.client.put(out["uploadUrl"], content=PNG, headers=out["headers"])
    assert (put.status_code, put.json()) == (200, {"id": out["id"]})
    made = await api.client.post("/video-gen/image-to-video", json=image_request(id=out["id"]), headers=api.auth())
    assert made.status_code == 200, made.text
    history = (await api.client.get("/video-gen/generations", headers=api.auth())).json()["items"]
    link = history[0]["downloadUrl"]
    video = await api.client.get(link)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert video.headers["accept-ranges"] == "bytes"  # a browser may seek
    size = len(video.content)
    head = await api.client.get(link, headers={"Range": "bytes=0-99"})
    assert (head.status_code, head.content) == (206, video.content[:100])
    assert head.headers["content-range"] == f"bytes 0-99/{size}" and head.headers["content-length"] == "100"
    tail = await api.client.get(link, headers={"Range": "bytes=-50"})
    assert (tail.status_code, tail.content) == (206, video.content[-50:])
    rest = await api.client.get(link, headers={"Range": f"bytes={size - 10}-"})
    assert (rest.status_code, rest.content) == (206, video.content[-10:])
    beyond = await api.client.get(link, headers={"Range": f"bytes={size}-"})
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, f"bytes */{size}")
    several = await api.client.get(link, headers={"Range": "bytes=0-1,5-6"})
    assert (several.status_code, several.content) == (200, video.content)
    other = await api.client.post("/video-gen/image-to-video", json=image_request(id=out["id"]), headers=api.auth("u2"))
    assert other.status_code == 404  # an upload belongs to its uploader


async def test_refusals_are_in_the_spec_body(api: Api) -> None:
    limit = api.settings.max_source_bytes
    bad = await api.client.post(
        "/video-gen/uploads", json={"contentType": "image/gif", "contentLength": limit + 1, "x": 1}, headers=api.auth()
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "statusCode": 400,
        "message": [
            "property x should not exist",
            "contentType must be one of the following values: image/png, image/jpeg, image/webp",
            f"contentLength must not be greater than {limit}",
        ],
        "error": "Bad Request",
    }
    assert (await upload(api, length=0)).json()["message"] == ["contentLength must be a positive number"]
    assert (await api.client.post("/video-gen/uploads", json={}, headers={})).status_code == 401
    out = (await upload(api)).json()
    url = out["uploadUrl"]
    tampered = url.replace(f"length={len(PNG)}", f"length={len(PNG) + 10}")
    forged = await api.client.put(tampered, content=PNG + b"x" * 10, headers=out["headers"])
    assert (forged.status_code, forged.json()["message"]) == (403, "Invalid or expired upload link")
    other_key = url.replace("/images/u1/", "/images/u2/")
    assert (await api.client.put(other_key, content=PNG, headers=out["headers"])).status_code == 403
    wrong_type = await api.client.put(url, content=PNG, headers={"Content-Type": "image/jpeg"})
    assert (wrong_type.status_code, wrong_type.json()["message"]) == (400, "Content-Type must be image/png")
    longer = await api.client.put(url, content=PNG + b"\0", headers=out["headers"])
    assert (longer.status_code, longer.json()["message"]) == (413, f"The upload must be exactly {len(PNG)} bytes")
    not_png = await api.client.put(url, content=b"G" * len(PNG), headers=out["headers"])
    assert (not_png.status_code, not_png.json()["message"]) == (400, "The upload is not a image/png image")
    made = await api.client.post("/video-gen/image-to-video", json=image_request(id=out["id"]), headers=api.auth())
    assert made.status_code == 404  # nothing was stored by the refused uploads


def test_an_expired_upload_link_is_refused() -> None:
    expires = int(time.time()) + 60
    signature = sign_upload("s" * 32, "images/u1/a.png", "image/png", 10, expires)
    assert verify_upload_signature("s" * 32, "images/u1/a.png", "image/png", 10, expires, signature)
    assert not verify_upload_signature(
        "s" * 32, "images/u1/a.png", "image/png", 10, expires, signature, now=expires + 1
    )
    assert not verify_upload_signature("s" * 32, "images/u1/a.png", "image/webp", 10, expires, signature)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_upload_generate_download_with_s3(
    database_url: str, redis_prefix: str, tmp_path: Path, moto_server: str, s3_bucket: str
) -> None:
    settings = make_settings(
        database_url,
        redis_prefix,
        tmp_path,
        storage_url=f"s3://{s3_bucket}/media",
        s3_endpoint_url=moto_server,
        s3_region="us-east-1",
        s3_path_style=True,
    )
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        await grant("u1", 750)
        auth = {"Authorization": f"Bearer {token_for(settings, 'u1')}"}
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            r = await client.post(
                "/video-gen/uploads", json={"contentType": "image/png", "contentLength": len(PNG)}, headers=auth
            )
            assert r.status_code == 200, r.text
            out = r.json()
            query = parse_qs(urlsplit(out["uploadUrl"]).query)
            assert set(query["X-Amz-SignedHeaders"][0].split(";")) >= {"content-length", "content-type", "host"}
            assert out["headers"] == {"Content-Type": "image/png", "Content-Length": str(len(PNG))}
            put = await client.put(out["uploadUrl"], content=PNG, headers=out["headers"])
            assert put.status_code == 200, put.text
            made = await client.post("/video-gen/image-to-video", json=image_request(id=out["id"]), headers=auth)
            assert made.status_code == 200, made.text
            url = (await client.get("/video-gen/generations", headers=auth)).json()["items"][0]["downloadUrl"]
            assert (await client.get(url)).content[4:8] == b"ftyp"
    async with get_session().create_client("s3", endpoint_url=moto_server, region_name="us-east-1") as s3:
        head = await s3.head_object(Bucket=s3_bucket, Key=f"media/{out['id']}")
    assert head["ContentType"] == "image/png" and head["ContentLength"] == len(PNG)
