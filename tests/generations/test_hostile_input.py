"""Hostile input costs nothing: each is a 4xx in the spec's body, with no job queued, no credit
moved and no ledger entry (issue 10, items 7 to 10)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from service.core.keys import Keys
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from tests.conftest import REDIS_URL, Api
from tests.factories import grant, image_request, make_image, seed_image

JSON = {"Content-Type": "application/json"}


async def _queued(api: Api) -> int:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = Keys(api.settings.redis_key_prefix)  # every model's jobs stream
        return sum([await client.xlen(keys.queue(m.decode())) for m in await client.smembers(keys.queues)])
    finally:
        await client.aclose()


async def _entries() -> int:
    return await LedgerEntry.count()


def _spec_error(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"} and body["statusCode"] == status
    return body["message"]


async def _post(api: Api, **kwargs: Any) -> Any:
    headers = {**api.auth("u1"), **kwargs.pop("headers", {})}
    return await api.client.post("/video-gen/image-to-video", headers=headers, **kwargs)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_strings_are_bounded_and_clean_before_anything_is_queued(api: Api) -> None:
    await grant("u1", 7500)
    cases = [
        ({"prompt": "x" * 2001}, ["prompt must be shorter than or equal to 2000 characters"]),
        ({"prompt": "a\x00b"}, ["prompt must not contain null characters"]),
        ({"projectId": "p" * 256}, ["projectId must be shorter than or equal to 255 characters"]),
        ({"projectId": "p\x00"}, ["projectId must not contain null characters"]),
        ({"id": "images/u1/a\x00.png"}, ["id must not contain null characters"]),
        (
            {"options": {"k\x00": "v"}},
            ["options.property k\x00 should not exist", "options must not contain null characters"],
        ),
        ({"duration": ""}, ["duration must be one of the following values: 5s, 8s, 10s"]),
    ]
    for change, messages in cases:
        message = _spec_error(await _post(api, json=image_request(**change)), 400)
        assert message == messages, change
    assert await _queued(api) == 0
    assert await ledger.balance_of("u1") == 7500 and await _entries() == 1
    at_limit = image_request(prompt="x" * 2000, id="images/u1/none.png")  # valid: the worker finds no image
    assert _spec_error(await _post(api, json=at_limit), 404) == "Source image not found: images/u1/none.png"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bodies_that_are_not_json_objects_are_4xx(api: Api) -> None:
    await grant("u1", 7500)
    await seed_image(api.settings)
    good = json.dumps(image_request())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        assert _spec_error(await _post(api, content=good, headers={"Content-Type": content_type}), 415) == (
            "Content-Type must be application/json"
        )
    assert _spec_error(await _post(api, content=good.encode()), 415)  # no Content-Type at all
    deep = "[" * 1000 + "]" * 1000
    assert _spec_error(await _post(api, content=deep, headers=JSON), 400) == "Malformed JSON body: nested too deeply"
    nested = good[:-1] + ', "options": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}"
    assert "options must not be nested more than 8 levels deep" in _spec_error(
        await _post(api, content=nested, headers=JSON), 400
    )
    latin1 = '{"id": "images/u1/\xe9.png", "prompt": "p"}'.encode("latin-1")
    assert _spec_error(await _post(api, content=latin1, headers=JSON), 400) == "Malformed JSON body: not valid UTF-8"
    assert _spec_error(await _post(api, content=b"null", headers=JSON), 400) == ["request body must be a JSON object"]
    assert await _queued(api) == 0
    assert await ledger.balance_of("u1") == 7500 and await _entries() == 1
    assert (
        await _post(api, content=good, headers={"Content-Type": "application/json; charset=utf-8"})
    ).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_images_that_do_not_decode_are_refused_before_any_charge(api: Api) -> None:
    await grant("u1", 7500)
    truncated = make_image(width=64, height=36)[:-40]
    await seed_image(api.settings, name="truncated.png", data=truncated)
    await seed_image(api.settings, name="garbage.png", data=b"\x89PNG\r\n\x1a\n" + b"\x07" * 300)
    for name in ("truncated.png", "garbage.png"):
        message = _spec_error(await _post(api, json=image_request(id=f"images/u1/{name}")), 400)
        assert message.startswith("Source image could not be decoded"), message
    assert await ledger.balance_of("u1") == 7500 and await _entries() == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_oversized_keys_and_user_ids_are_refused_at_once(api: Api) -> None:
    await grant("u1", 7500)
    message = _spec_error(await _post(api, json=image_request(id=f"images/u1/{'a' * 300}.png")), 400)
    assert message == "Invalid source image key: a segment is longer than 200 bytes"
    for sub in ("u" * 256, "u\x00"):
        r = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=api.auth(sub))
        assert "Invalid token: sub must be at most 255 characters" in _spec_error(r, 401)
    assert await _queued(api) == 0 and await _entries() == 1


def _cursor(created: str, key: int | str) -> str:
    raw = json.dumps([created, 0, key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_cursors_dates_and_options_out_of_range_are_4xx(api: Api) -> None:
    admin = api.auth("root", roles=["admin"])
    for path in (
        f"/admin/audit?cursor={_cursor('2026-01-01T00:00:00+00:00', 2**40)}",
        f"/video-gen/credits?cursor={_cursor('2026-01-01T00:00:00+00:00', 2**31)}",
        f"/admin/audit?cursor={_cursor('0001-01-01T00:00:00+14:00', 1)}",
        f"/video-gen/generations?cursor={_cursor('9999-12-31T23:59:59-14:00', 'g')}",
    ):
        assert _spec_error(await api.client.get(path, headers=admin), 400) == ["cursor is not valid"], path
    for path in ("/admin/generations", "/admin/audit"):
        r = await api.client.get(path, params={"since": "0001-01-01T00:00:00+14:00"}, headers=admin)
        assert _spec_error(r, 400) == ["since must be a date between year 1 and 9999 in UTC"]
        r = await api.client.get(path, params={"until": "9999-12-31T23:59:59-14:00"}, headers=admin)
        assert _spec_error(r, 400) == ["until must be a date between year 1 and 9999 in UTC"]
    for path in ("/admin/generations", "/admin/grants", "/admin/queue"):
        for headers in ({}, admin):
            r = await api.client.request("OPTIONS", path, headers=headers)
            assert 400 <= r.status_code < 500 and set(r.json()) == {"statusCode", "message", "error"}, path


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_nul_in_any_parameter_or_body_is_a_400_not_a_database_error(api: Api) -> None:
    admin = api.auth("root", roles=["admin"])
    cases = [
        ("POST", "/admin/credits/grants", {"json": {"userId": "a\x00", "amount": 1, "reason": "x"}}, "userId"),
        ("POST", "/admin/credits/grants", {"json": {"userId": "a", "amount": 1, "reason": "x\x00"}}, "reason"),
        ("GET", "/admin/generations?userId=%00", {}, "userId"),
        ("GET", "/admin/audit?kind=%00", {}, "kind"),
        ("GET", "/video-gen/generations?projectId=a%00b", {}, "projectId"),
        ("GET", "/video-gen/jobs/%00", {}, "job_id"),
        ("POST", "/admin/generations/%00/refund", {"json": {"reason": "x"}}, "generation_id"),
    ]
    for method, path, kwargs, name in cases:
        r = await api.client.request(method, path, headers=admin, **kwargs)
        assert _spec_error(r, 400) == [f"{name} must not contain null characters"], path
    assert await ledger.balance_of("a") == 0 and await _entries() == 0
