"""202 answers and the job endpoints (``job_endpoints.py``): status, progress, outcome, download; owner or admin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from service.core.settings import Settings
from service.generations.tables import Generation
from service.ledger import service as ledger
from tests.factories import grant, image_request, seed_image
from tests.jobs.conftest import JobsApi, open_gate, running
from tests.workers.models import ScriptedModel

SUCCESS_FIELDS = {"success", "s3Key", "model", "credits", "duration", "generationTime"}


async def test_respond_async_answers_202_at_once_and_the_job_shows_the_outcome(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 1000)
    r = await jobs_api.post(image_request(), headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"success", "jobId", "status", "statusUrl"}
    assert body["statusUrl"] == f"/video-gen/jobs/{body['jobId']}"
    assert r.headers["location"] == body["statusUrl"]
    assert r.headers["preference-applied"] == "respond-async"
    job = await jobs_api.until_terminal(body["jobId"])
    assert job["status"] == "succeeded"
    assert set(job["result"]) == SUCCESS_FIELDS
    assert job["result"]["credits"] == {"used": 750, "balance": 250.0}
    assert job["error"] is None and job["attempts"] == 1
    video = await jobs_api.client.get(job["downloadUrl"])
    assert video.status_code == 200 and video.content.startswith(b"\x00\x00\x00\x18ftyp")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_running_job_shows_its_progress_and_only_its_owner_or_an_admin_sees_it(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 1000)
    r = await jobs_api.post(image_request(options={"gate": "g"}), headers={"Prefer": "respond-async"})
    job_id = r.json()["jobId"]
    while (view := (await jobs_api.job(job_id)).json())["status"] != "running" or view["progress"] is None:
        await asyncio.sleep(0.02)
    assert view["progress"] == {"message": "working", "fraction": 0.1, "queuePosition": None}
    assert view["result"] is None and view["downloadUrl"] is None
    other = await jobs_api.job(job_id, user="u2")
    missing = await jobs_api.job("0" * 32, user="u2")
    assert other.status_code == missing.status_code == 404
    assert other.json() == {"statusCode": 404, "message": f"Job {job_id} not found", "error": "Not Found"}
    admin = await jobs_api.job(job_id, user="root", roles=["admin"])
    assert admin.status_code == 200 and admin.json()["jobId"] == job_id
    open_gate("g")
    assert (await jobs_api.until_terminal(job_id))["status"] == "succeeded"
    assert (await jobs_api.job(job_id, user="u2")).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_generation_outlasting_the_sync_wait_answers_202_and_goes_on(
    stack_settings: Callable[..., Settings],
) -> None:
    async with running(stack_settings(sync_wait_seconds=0.2)) as api:
        await seed_image(api.settings)
        await grant("u1", 1000)
        r = await api.post(image_request(options={"gate": "late"}))
        assert r.status_code == 202
        assert "preference-applied" not in r.headers
        open_gate("late")
        job = await api.until_terminal(r.json()["jobId"])
        assert job["status"] == "succeeded"
        assert await ledger.balance_of("u1") == 250


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_failed_jobs_show_the_spec_error_body(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 1000)
    failing = await jobs_api.post(image_request(model="failing"), headers={"Prefer": "respond-async"})
    job = await jobs_api.until_terminal(failing.json()["jobId"])
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"] == {
        "statusCode": 500,
        "error": "Internal Server Error",
        "message": "Image-to-video generation failed: the model exploded",
    }
    assert await ledger.balance_of("u1") == 1000
    await grant("u2", 100)
    await seed_image(jobs_api.settings, user_id="u2")
    poor = await jobs_api.post(
        image_request(id="images/u2/source-image.png"), user="u2", headers={"Prefer": "respond-async"}
    )
    job = await jobs_api.until_terminal(poor.json()["jobId"], user="u2")  # never charged: no record
    assert job["error"] == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Insufficient credits. Required: 750, Available: 100.0",
    }
    assert job["attempts"] is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_queued_job_says_so(stack_settings: Callable[..., Settings]) -> None:
    async with running(stack_settings(), workers=0) as api:
        await seed_image(api.settings)
        r = await api.post(image_request(), headers={"Prefer": "respond-async"})
        view = (await api.job(r.json()["jobId"])).json()
        assert view["status"] == "queued" and view["model"] == "scripted" and view["submittedAt"]
        assert (await api.job(r.json()["jobId"], user="u2")).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_client_that_disconnects_while_waiting_loses_nothing(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 1000)
    with pytest.raises(httpx.ReadTimeout):
        await jobs_api.post(image_request(options={"gate": "gone"}), timeout=httpx.Timeout(60, read=0.3))
    open_gate("gone")
    deadline = time.monotonic() + 60  # safety net
    while not (rows := await Generation.select().where(Generation.status == "succeeded")):
        assert time.monotonic() < deadline, "the job did not finish"
        await asyncio.sleep(0.05)
    view = await jobs_api.until_terminal(rows[0]["id"])
    assert view["status"] == "succeeded" and view["result"]["credits"]["used"] == 750
    assert await ledger.balance_of("u1") == 250
    assert ScriptedModel.generations.total() == 1
