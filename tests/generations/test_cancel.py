"""``POST /video-gen/jobs/{id}/cancel`` through HTTP, the API and a worker, on SQLite and PostgreSQL:
a queued job never runs, a running one is stopped and refunded once, a waiting request and retries
get the 409, finished jobs answer 409 with their status, and only the owner or an admin may."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.generations import repository as generations
from service.generations.status import GenerationStatus
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from service.ledger.verify import verify_ledger
from tests.conftest import make_settings
from tests.factories import grant, image_request, seed_image
from tests.jobs.conftest import JobsApi, open_gate, running
from tests.workers.models import ScriptedModel

CANCELLED_BODY = {"statusCode": 409, "message": "Image-to-video generation cancelled", "error": "Conflict"}


def settings_for(database_url: str, redis_prefix: str, tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {"shutdown_grace_seconds": 1.0, "default_model": "scripted", **overrides}
    return make_settings(database_url, redis_prefix, tmp_path, **values)


@pytest.fixture
async def api(database_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[JobsApi]:
    async with running(settings_for(database_url, redis_prefix, tmp_path)) as jobs:
        await seed_image(jobs.settings)
        yield jobs


async def cancel(api: JobsApi, job_id: str, *, user: str = "u1", roles: list[str] | None = None) -> Any:
    return await api.client.post(f"/video-gen/jobs/{job_id}/cancel", headers=api.auth(user, roles=roles))


async def until_running(api: JobsApi, job_id: str) -> None:
    while ScriptedModel.generations[job_id] == 0:  # the model started (safety: the test's timeout)
        await asyncio.sleep(0.02)


async def refunds(job_id: str) -> list[dict[str, Any]]:
    return await LedgerEntry.select().where((LedgerEntry.generation_id == job_id) & (LedgerEntry.kind == "refund"))


async def test_a_running_job_is_stopped_refunded_once_and_its_waiting_request_gets_409(api: JobsApi) -> None:
    await grant("u1", 1000)
    key = {"Idempotency-Key": "cancel-me-1"}
    waiting = asyncio.create_task(api.post(image_request(options={"gate": "never"}), headers=key))
    while not (rows := await generations.list_page(generations_filter(), limit=5, cursor=None))[0]:
        await asyncio.sleep(0.02)
    job_id = rows[0][0].id
    await until_running(api, job_id)
    assert await ledger.balance_of("u1") == 250
    r = await cancel(api, job_id)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "cancelled" and view["error"] == CANCELLED_BODY and view["finishedAt"]
    answer = await waiting
    assert (answer.status_code, answer.json()) == (409, CANCELLED_BODY)
    retry = await api.post(image_request(options={"gate": "never"}), headers=key)
    assert (retry.status_code, retry.json()) == (409, CANCELLED_BODY)
    assert await ledger.balance_of("u1") == 1000
    [refund] = await refunds(job_id)
    assert refund["amount"] == 750 and refund["actor"] == "u1" and "cancelled" in refund["reason"]
    while ScriptedModel.stopped[job_id] == 0:  # the worker stops the model run
        await asyncio.sleep(0.02)
    assert ScriptedModel.provider_cancels == [f"req-{job_id}-1"]
    record = await generations.get(job_id)
    assert record.status is GenerationStatus.CANCELLED and record.credits_refunded == 750
    again = await cancel(api, job_id)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert len(await refunds(job_id)) == 1
    history = (await api.client.get("/video-gen/generations", headers=api.auth())).json()["items"]
    assert [(g["id"], g["status"], g["creditsRefunded"]) for g in history] == [(job_id, "cancelled", 750)]
    listing = await api.client.get(
        "/admin/generations", params={"status": "cancelled"}, headers=api.auth("root", roles=["admin"])
    )
    assert [g["id"] for g in listing.json()["items"]] == [job_id]
    assert (await verify_ledger()).violations == []


async def test_a_finished_job_answers_409_with_its_status_and_nothing_moves(api: JobsApi) -> None:
    await grant("u1", 2000)
    done = await api.post(image_request())
    assert done.status_code == 200
    [record] = (await generations.list_page(generations_filter(), limit=5, cursor=None))[0]
    r = await cancel(api, record.id)
    assert r.status_code == 409
    assert r.json() == {"statusCode": 409, "message": f"Job {record.id} already succeeded", "error": "Conflict"}
    failed = await api.post(image_request(options={"fail": "no"}), headers={"Prefer": "respond-async"})
    job_id = failed.json()["jobId"]
    assert (await api.until_terminal(job_id))["status"] == "failed"
    r = await cancel(api, job_id)
    assert (r.status_code, r.json()["message"]) == (409, f"Job {job_id} already failed")
    assert await ledger.balance_of("u1") == 1250
    assert len(await refunds(job_id)) == 1
    assert (await generations.get(record.id)).status is GenerationStatus.SUCCEEDED


async def test_only_the_owner_or_an_admin_cancels(api: JobsApi) -> None:
    await grant("u1", 1000)
    r = await api.post(image_request(options={"gate": "g"}), headers={"Prefer": "respond-async"})
    job_id = r.json()["jobId"]
    await until_running(api, job_id)
    other = await cancel(api, job_id, user="u2")
    missing = await cancel(api, "0" * 32, user="u2")
    assert other.status_code == missing.status_code == 404
    assert other.json() == {"statusCode": 404, "message": f"Job {job_id} not found", "error": "Not Found"}
    assert (await generations.get(job_id)).status is GenerationStatus.RUNNING
    admin = await cancel(api, job_id, user="root", roles=["admin"])
    assert admin.status_code == 200 and admin.json()["status"] == "cancelled"
    [refund] = await refunds(job_id)
    assert refund["actor"] == "admin root"
    audit = await api.client.get(
        "/admin/audit", params={"generationId": job_id}, headers=api.auth("root", roles=["admin"])
    )
    reasons = [item.get("reason") for item in audit.json()["items"]]
    assert "generation cancelled by admin root" in reasons
    open_gate("g")
    assert (await api.until_terminal(job_id))["status"] == "cancelled"


async def test_a_queued_job_is_cancelled_without_a_charge(database_url: str, redis_prefix: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, redis_prefix, tmp_path), workers=0) as api:
        await seed_image(api.settings)
        await grant("u1", 1000)
        r = await api.post(image_request(projectId="p-9"), headers={"Prefer": "respond-async"})
        job_id = r.json()["jobId"]
        assert (await api.job(job_id)).json()["status"] == "queued"
        assert (await cancel(api, job_id, user="u2")).status_code == 404
        c = await cancel(api, job_id)
        assert c.status_code == 200, c.text
        assert c.json()["status"] == "cancelled" and c.json()["error"] == CANCELLED_BODY
        record = await generations.get(job_id)
        assert record.status is GenerationStatus.CANCELLED
        assert (record.credits_charged, record.credits_refunded, record.project_id) == (0, 0, "p-9")
        assert record.prompt == image_request()["prompt"] and record.attempts == 0
        assert await ledger.balance_of("u1") == 1000
        assert (await cancel(api, job_id)).status_code == 200
        assert (await verify_ledger()).violations == []


def generations_filter() -> Any:
    from service.generations.schemas import GenerationFilter

    return GenerationFilter(user_id="u1")
