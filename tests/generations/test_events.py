"""``GET /video-gen/jobs/{id}/events`` with a real SSE client (httpx-sse), on SQLite and PostgreSQL:
the state at once, status and progress changes, one ``done`` event with the job endpoint's body,
then the stream closes; reconnecting starts from the current state; not rate limited; streams
cost no Redis connection each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx_sse import aconnect_sse

from tests.conftest import REDIS_URL, make_settings
from tests.factories import grant, image_request, seed_image
from tests.jobs.conftest import JobsApi, open_gate, running
from tests.workers.models import ScriptedModel

VOLATILE = {"downloadUrl", "downloadExpiresAt"}  # signed links: each read makes a new one


def settings_for(database_url: str, redis_prefix: str, tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {"shutdown_grace_seconds": 1.0, "default_model": "scripted", **overrides}
    return make_settings(database_url, redis_prefix, tmp_path, **values)


@pytest.fixture
async def api(database_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[JobsApi]:
    async with running(settings_for(database_url, redis_prefix, tmp_path)) as jobs:
        await seed_image(jobs.settings)
        await grant("u1", 5000)
        yield jobs


async def events(api: JobsApi, job_id: str, *, user: str = "u1", on_event: Any = None, **headers: str) -> list[Any]:
    """Every event of the stream, until the server closes it."""
    seen = []
    async with aconnect_sse(
        api.client, "GET", f"/video-gen/jobs/{job_id}/events", headers={**api.auth(user), **headers}
    ) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            seen.append((sse.event, sse.id, json.loads(sse.data)))
            if on_event is not None:
                await on_event(seen)
    return seen


def stable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in VOLATILE}


async def test_a_job_streams_its_state_progress_and_outcome_then_closes(api: JobsApi) -> None:
    r = await api.post(image_request(options={"gate": "go", "sleep": 3}), headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    job_id = r.json()["jobId"]

    async def step(seen: list[Any]) -> None:
        if len(seen) == 2:  # running (or its first progress): let it go on
            open_gate("go")

    seen = await events(api, job_id, on_event=step)
    names = [name for name, _, _ in seen]
    assert names[0] == "state" and names[-1] == "done" and names.count("done") == 1
    assert seen[0][2]["status"] in ("queued", "running")
    fractions = [view["progress"]["fraction"] for name, _, view in seen if name == "progress"]
    assert len(fractions) >= 2 and fractions == sorted(fractions) and fractions[-1] > 0.5
    ids = [event_id for _, event_id, _ in seen[1:] if event_id]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    done = seen[-1][2]
    assert done["status"] == "succeeded" and done["result"]["credits"]["used"] == 750
    endpoint = (await api.job(job_id)).json()
    assert stable(done) == stable(endpoint)
    again = await events(api, job_id, **{"Last-Event-ID": seen[-2][1] or "0-0"})  # reconnecting: the outcome
    assert [(n, stable(v)) for n, _, v in again] == [("done", stable(endpoint))]


async def test_a_cancelled_or_failed_job_ends_with_its_error(api: JobsApi) -> None:
    r = await api.post(image_request(options={"gate": "never"}), headers={"Prefer": "respond-async"})
    job_id = r.json()["jobId"]

    async def cancel_once_running(seen: list[Any]) -> None:
        if seen[-1][2]["status"] == "running" and len(seen) < 3:
            await api.client.post(f"/video-gen/jobs/{job_id}/cancel", headers=api.auth())

    while ScriptedModel.generations[job_id] == 0:
        await asyncio.sleep(0.02)
    seen = await events(api, job_id, on_event=cancel_once_running)
    assert seen[-1][0] == "done" and seen[-1][2]["status"] == "cancelled"
    assert seen[-1][2]["error"]["statusCode"] == 409
    failed = await api.post(image_request(options={"fail": "boom"}), headers={"Prefer": "respond-async"})
    seen = await events(api, failed.json()["jobId"])
    assert seen[-1][0] == "done" and seen[-1][2]["status"] == "failed"


async def test_only_the_owner_or_an_admin_follows_a_job(api: JobsApi) -> None:
    r = await api.post(image_request())
    [job_id] = [g["id"] for g in (await api.client.get("/video-gen/generations", headers=api.auth())).json()["items"]]
    assert r.status_code == 200
    other = await api.client.get(f"/video-gen/jobs/{job_id}/events", headers=api.auth("u2"))
    assert other.status_code == 404
    assert other.json() == {"statusCode": 404, "message": f"Job {job_id} not found", "error": "Not Found"}
    async with aconnect_sse(
        api.client, "GET", f"/video-gen/jobs/{job_id}/events", headers=api.auth("root", roles=["admin"])
    ) as source:
        assert [sse.event async for sse in source.aiter_sse()] == ["done"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_streams_are_not_rate_limited_and_cost_no_redis_connection_each(
    database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    import redis.asyncio as aioredis

    async with running(
        settings_for(database_url, redis_prefix, tmp_path, rate_limit_per_minute=3, job_status_rate_limit_per_minute=3)
    ) as api:
        await seed_image(api.settings)
        await grant("u1", 1000)
        r = await api.post(image_request(options={"gate": "hold"}), headers={"Prefer": "respond-async"})
        job_id = r.json()["jobId"]
        client = aioredis.Redis.from_url(REDIS_URL)

        async def connections() -> int:
            return sum(1 for c in await client.client_list() if c.get("name", "").startswith(redis_prefix))

        try:
            before = await connections()
            opened: list[Any] = []
            streams = []
            for _ in range(40):  # far past the rate limit of 3 a minute
                cm = aconnect_sse(api.client, "GET", f"/video-gen/jobs/{job_id}/events", headers=api.auth())
                source = await cm.__aenter__()
                assert source.response.status_code == 200
                it = source.aiter_sse()
                first = await it.__anext__()
                assert first.event == "state"
                opened.append(cm)
                streams.append(it)
            assert api.app_state.watchers.watching == 40
            assert await connections() <= before + 1  # a pool connection at most, never one per stream
            open_gate("hold")
            for it in streams:
                names = [sse.event async for sse in it]
                assert names[-1] == "done"
            for cm in opened:
                await cm.__aexit__(None, None, None)
            polled = [(await api.job(job_id)).status_code for _ in range(4)]
            assert polled[-1] == 429  # polling is what the limit counts
        finally:
            await client.aclose()
