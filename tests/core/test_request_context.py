"""The request id: taken from ``X-Request-ID`` or made, returned, bound to the API's lines, carried
in the job message and bound with the job's ids to the worker's lines; one access line a request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from service.core.request_context import request_id_from
from tests.conftest import Api
from tests.factories import grant, image_request, seed_image


class Captured:
    """structlog's lines as written to stderr (JSON: stderr is not a terminal under pytest's
    capture), parsed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys, self._text = capsys, ""

    @property
    def events(self) -> list[dict[str, Any]]:
        self._text += self._capsys.readouterr().err
        return [json.loads(line) for line in self._text.splitlines() if line.startswith("{")]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Captured:
    return Captured(capsys)


def test_a_sane_caller_id_is_kept_and_anything_else_replaced() -> None:
    assert request_id_from("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "x" * 129, "two words", 'quote"', "line\nbreak"):
        made = request_id_from(bad)
        assert made != bad and len(made) == 32 and int(made, 16) >= 0


async def test_the_request_id_joins_the_api_lines_to_the_worker_lines(api: Api, captured: Captured) -> None:
    await seed_image(api.settings)
    await grant("u1", 750)
    r = await api.client.post(
        "/video-gen/image-to-video",
        json=image_request(),
        headers={**api.auth("u1"), "X-Request-ID": "client-req-42"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "client-req-42"
    [access] = [e for e in captured.named("http.request") if e["path"] == "/video-gen/image-to-video"]
    assert access["request_id"] == "client-req-42"
    assert access["method"] == "POST" and access["status"] == 200 and access["duration_ms"] > 0
    # never the body, the query or the headers (prompts, keys, tokens)
    assert set(access) <= {
        "event",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "level",
        "logger",
        "timestamp",
    }
    assert not any("Bearer" in repr(e) or "sunset" in repr(e) for e in captured.events)
    for _ in range(200):  # the worker logs the job done after writing its reply: the answer can come first
        if captured.named("job.done"):
            break
        await asyncio.sleep(0.05)
    [done] = captured.named("job.done")
    assert done["request_id"] == "client-req-42"
    assert done["user_id"] == "u1" and done["model"] == "local" and len(done["job_id"]) == 32


async def test_an_id_is_made_when_none_is_sent_and_health_is_not_logged(api: Api, captured: Captured) -> None:
    first = await api.client.get("/video-gen/models")
    second = await api.client.get("/video-gen/models", headers={"X-Request-ID": "bad id with spaces"})
    made = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(len(i) == 32 for i in made) and made[0] != made[1]
    assert [e["request_id"] for e in captured.named("http.request")] == made
    assert (await api.client.get("/health/live")).headers["x-request-id"]
    assert len(captured.named("http.request")) == 2  # probes and scrapes write no access line
