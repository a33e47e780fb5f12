"""POST /video-gen/image-to-video over real HTTP, with real Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from models_registry.video import probe_video
from service.ledger import service as ledger
from tests.conftest import Api
from tests.factories import grant, image_request, seed_image

SPEC_FIRST_CURL = {
    "id": "images/u1/source-image.png",
    "prompt": "A beautiful sunset over the ocean with gentle waves",
    "duration": "8s",
    "projectId": "project-456",
}
SPEC_MINIMUM = {"id": "images/u1/source-image.png", "prompt": "Animate this image with subtle motion"}


def stored_video(api: Api, key: str) -> Path:
    return Path(api.settings.storage_url.removeprefix("file://")) / key


async def test_spec_first_curl_generates_a_real_video(api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 900)
    r = await api.client.post("/video-gen/image-to-video", json=SPEC_FIRST_CURL, headers=api.auth("u1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "s3Key", "model", "credits", "duration", "generationTime"}
    assert body["success"] is True
    assert body["model"] == "local"
    assert body["credits"] == {"used": 750, "balance": 150.0}
    assert isinstance(body["credits"]["used"], int) and isinstance(body["credits"]["balance"], float)
    assert body["duration"] == "8s"
    assert isinstance(body["generationTime"], int) and body["generationTime"] > 0
    assert body["s3Key"].startswith("videos/u1/") and body["s3Key"].endswith(".mp4")
    info = probe_video(stored_video(api, body["s3Key"]))
    assert (info.width, info.height, info.codec) == (320, 180, "h264")
    assert info.frames == 8 * 12
    assert abs(info.duration_seconds - 8.0) < 1e-6


async def test_spec_minimum_fields_use_the_default_duration(api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 750)
    r = await api.client.post("/video-gen/image-to-video", json=SPEC_MINIMUM, headers=api.auth("u1"))
    assert r.status_code == 200, r.text
    assert r.json()["duration"] == "8s"
    assert r.json()["credits"] == {"used": 750, "balance": 0.0}
    assert probe_video(stored_video(api, r.json()["s3Key"])).frames == 8 * 12


async def test_insufficient_credits_is_the_spec_sentence_and_changes_nothing(api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 100)
    r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=api.auth("u1"))
    assert r.status_code == 400
    assert r.json() == {
        "statusCode": 400,
        "message": "Insufficient credits. Required: 750, Available: 100.0",
        "error": "Bad Request",
    }
    assert await ledger.balance_of("u1") == 100


async def test_failed_generation_is_refunded_once(api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 1000)
    r = await api.client.post("/video-gen/image-to-video", json=image_request(model="failing"), headers=api.auth("u1"))
    assert r.status_code == 500
    assert r.json()["message"] == "Image-to-video generation failed: the model exploded"
    assert r.json()["error"] == "Internal Server Error"
    assert await ledger.balance_of("u1") == 1000


async def test_history_hands_out_a_working_download_link(api: Api, tmp_path: Path) -> None:
    await seed_image(api.settings)
    await grant("u1", 750)
    r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=api.auth("u1"))
    assert r.status_code == 200, r.text
    page = (await api.client.get("/video-gen/generations", headers=api.auth("u1"))).json()
    link = page["items"][0]["downloadUrl"]
    assert page["items"][0]["s3Key"] == r.json()["s3Key"]
    video = await api.client.get(link)  # the link itself is the credential: no token
    assert video.status_code == 200 and video.headers["content-type"].startswith("video/mp4")
    (tmp_path / "download.mp4").write_bytes(video.content)
    assert probe_video(tmp_path / "download.mp4").frames == 5 * 12
    tampered = await api.client.get(link.replace("signature=", "signature=0"))
    assert tampered.status_code == 403 and tampered.json()["statusCode"] == 403
    other = (await api.client.get("/video-gen/generations", headers=api.auth("u2"))).json()
    assert other["items"] == []
