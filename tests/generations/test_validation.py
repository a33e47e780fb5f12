"""Every validation message, in class-validator's words, and the 400/401 shapes.

Bad input changes nothing: no job is queued and no credit moves.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import jwt
import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.ledger import service as ledger
from tests.conftest import REDIS_URL, Api
from tests.factories import grant, image_request, token_for

CASES = [
    ({"prompt": "p"}, ["id should not be empty", "id must be a string"]),
    ({"id": "", "prompt": ""}, ["id should not be empty", "prompt should not be empty"]),
    ({"id": 5, "prompt": "p"}, ["id must be a string"]),
    ({"id": "images/u1/a.png"}, ["prompt should not be empty", "prompt must be a string"]),
    ({"id": "images/u1/a.png", "prompt": ["x"]}, ["prompt must be a string"]),
    (
        {"id": "images/u1/a.png", "prompt": "p", "duration": "7s"},
        ["duration must be one of the following values: 5s, 8s, 10s"],
    ),
    (
        {"id": "images/u1/a.png", "prompt": "p", "duration": 8},
        ["duration must be a string", "duration must be one of the following values: 5s, 8s, 10s"],
    ),
    ({"id": "images/u1/a.png", "prompt": "p", "projectId": 3}, ["projectId must be a string"]),
    ({"id": "images/u1/a.png", "prompt": "p", "foo": 1}, ["property foo should not exist"]),
    (
        {"id": "images/u1/a.png", "prompt": "p", "model": "nope"},
        ["model must be one of the following values: failing, local, veo3, veo3-fast, veo3.1, veo3.1-fast"],
    ),
    ({}, ["id should not be empty", "id must be a string", "prompt should not be empty", "prompt must be a string"]),
    # Options are the model's Options struct: a typo is refused, not charged and ignored.
    ({"id": "images/u1/a.png", "prompt": "p", "options": {"seed": 1}}, ["options.property seed should not exist"]),
    ({"id": "images/u1/a.png", "prompt": "p", "options": []}, ["options must be an object"]),
    # Without FAL_KEY the fal models are installed but cannot run here: a 400 before any charge.
    (
        {"id": "images/u1/a.png", "prompt": "p", "model": "veo3"},
        ["model veo3 is not available here: FAL_KEY is not set"],
    ),
    (
        {
            "id": "images/u1/a.png",
            "prompt": "p",
            "model": "veo3.1",
            "duration": "5s",
            "options": {"resolution": "8k", "generate_audio": "yes", "seeed": 3},
        },
        [
            "duration must be one of the following values: 4s, 6s, 8s",
            "options.property seeed should not exist",
            "options.resolution must be one of the following values: 720p, 1080p, 4k",
            "options.generate_audio must be a boolean value",
            "model veo3.1 is not available here: FAL_KEY is not set",
        ],
    ),
    ([1, 2], ["request body must be a JSON object"]),
]


async def _queued(api: Api) -> int:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = Keys(api.settings.redis_key_prefix)  # every model's jobs stream
        return sum([await client.xlen(keys.queue(m.decode())) for m in await client.smembers(keys.queues)])
    finally:
        await client.aclose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("body", "messages"), CASES)
async def test_validation_messages(api: Api, body: object, messages: list[str]) -> None:
    await grant("u1", 750)
    r = await api.client.post("/video-gen/image-to-video", json=body, headers=api.auth("u1"))
    assert r.status_code == 400, r.text
    assert r.json() == {"statusCode": 400, "message": messages, "error": "Bad Request"}
    assert await ledger.balance_of("u1") == 750
    assert await _queued(api) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_malformed_json_is_a_spec_shaped_400(api: Api) -> None:
    r = await api.client.post(
        "/video-gen/image-to-video",
        content=b'{"id": "x", ',
        headers={**api.auth("u1"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    assert "JSON" in body["message"]
    assert await _queued(api) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_another_users_key_is_refused_before_queueing(api: Api) -> None:
    await grant("u1", 750)
    r = await api.client.post(
        "/video-gen/image-to-video", json=image_request(id="images/u2/source-image.png"), headers=api.auth("u1")
    )
    assert r.status_code == 404
    assert r.json()["message"] == "Source image not found: images/u2/source-image.png"
    assert await _queued(api) == 0 and await ledger.balance_of("u1") == 750


def _tokens(secret: str) -> dict[str, dict[str, str]]:
    from datetime import datetime

    now = datetime.now(UTC)
    expired = jwt.encode({"sub": "u1", "exp": now - timedelta(minutes=1)}, secret, algorithm="HS256")
    wrong = jwt.encode({"sub": "u1", "exp": now + timedelta(minutes=5)}, "another-secret-of-32-bytes-length!!", "HS256")
    none_alg = jwt.encode({"sub": "u1", "exp": now + timedelta(minutes=5)}, None, algorithm="none")
    no_exp = jwt.encode({"sub": "u1"}, secret, algorithm="HS256")
    return {
        "no token": {},
        "not bearer": {"Authorization": "Basic dTE6cA=="},
        "bad signature": {"Authorization": f"Bearer {wrong}"},
        "expired": {"Authorization": f"Bearer {expired}"},
        "alg none": {"Authorization": f"Bearer {none_alg}"},
        "no exp": {"Authorization": f"Bearer {no_exp}"},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_unauthenticated_requests_get_a_spec_shaped_401(api: Api) -> None:
    for case, headers in _tokens(api.settings.jwt_secret).items():
        r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=headers)
        assert r.status_code == 401, case
        body = r.json()
        assert body["statusCode"] == 401 and body["error"] == "Unauthorized", case
        assert isinstance(body["message"], str) and body["message"], case
    assert await _queued(api) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_valid_token_is_accepted(api: Api) -> None:
    token = token_for(api.settings, "u1")
    r = await api.client.get("/video-gen/models", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    names = [m["name"] for m in r.json()["models"]]
    assert {"local", "veo3"} <= set(names)
