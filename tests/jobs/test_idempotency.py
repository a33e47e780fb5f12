"""``Idempotency-Key``: once per user and key; the same body gets the first outcome, another body a 422."""

from __future__ import annotations

import asyncio

import pytest

from service.generations.tables import Generation
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from tests.factories import grant, image_request, seed_image
from tests.jobs.conftest import JobsApi, open_gate
from tests.workers.models import ScriptedModel


async def debits(user_id: str) -> int:
    return await LedgerEntry.count().where((LedgerEntry.user_id == user_id) & (LedgerEntry.kind == "debit"))


async def test_a_retry_gets_the_first_outcome_and_is_not_charged_again(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 2000)
    headers = {"Idempotency-Key": "retry-1"}
    first = await jobs_api.post(image_request(), headers=headers)
    assert first.status_code == 200, first.text
    second = await jobs_api.post(image_request(), headers=headers)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert first.json()["credits"] == {"used": 750, "balance": 1250.0}
    assert await debits("u1") == 1 and await ledger.balance_of("u1") == 1250
    assert await Generation.count() == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_concurrent_retries_share_one_job(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 5000)
    headers = {"Idempotency-Key": "burst"}
    body = image_request(options={"gate": "burst"})
    waiting = [asyncio.create_task(jobs_api.post(body, headers=headers)) for _ in range(5)]
    while ScriptedModel.generations.total() == 0:  # the one job started; every request waits on it
        await asyncio.sleep(0.02)
    open_gate("burst")
    answers = await asyncio.gather(*waiting)
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    assert ScriptedModel.generations.total() == 1
    assert await debits("u1") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_retry_while_the_job_runs_waits_for_it_or_gets_its_job_id(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 5000)
    headers = {"Idempotency-Key": "slow-1"}
    body = image_request(options={"gate": "slow-1"})
    accepted = await jobs_api.post(body, headers={**headers, "Prefer": "respond-async"})
    assert accepted.status_code == 202
    again = await jobs_api.post(body, headers={**headers, "Prefer": "respond-async"})
    assert again.status_code == 202 and again.json()["jobId"] == accepted.json()["jobId"]
    waiter = asyncio.create_task(jobs_api.post(body, headers=headers))
    open_gate("slow-1")
    outcome = await waiter
    assert outcome.status_code == 200, outcome.text
    assert await debits("u1") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_same_key_with_another_body_is_a_spec_shaped_422(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 5000)
    headers = {"Idempotency-Key": "k-422"}
    assert (await jobs_api.post(image_request(), headers=headers)).status_code == 200
    r = await jobs_api.post(image_request(prompt="Something else entirely"), headers=headers)
    assert r.status_code == 422
    assert r.json() == {
        "statusCode": 422,
        "error": "Unprocessable Entity",
        "message": "Idempotency-Key k-422 was already used with a different request body; use a new key for a "
        "new request",
    }
    assert await debits("u1") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_keys_belong_to_their_user(jobs_api: JobsApi) -> None:
    for user in ("u1", "u2"):
        await seed_image(jobs_api.settings, user_id=user)
        await grant(user, 1000)
    headers = {"Idempotency-Key": "shared"}
    a = await jobs_api.post(image_request(), headers=headers, user="u1")
    b = await jobs_api.post(image_request(id="images/u2/source-image.png"), headers=headers, user="u2")
    assert a.status_code == b.status_code == 200
    assert a.json()["s3Key"] != b.json()["s3Key"]
    assert await debits("u1") == await debits("u2") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_first_outcome_stands_after_its_reply_expired_even_a_refusal(jobs_api: JobsApi) -> None:
    await seed_image(jobs_api.settings)
    await grant("u1", 100)
    headers = {"Idempotency-Key": "poor"}
    first = await jobs_api.post(image_request(), headers=headers)
    assert first.status_code == 400
    job_ids = [
        k async for k in jobs_api.app_state.redis.scan_iter(match=f"{jobs_api.settings.redis_key_prefix}:reply:*")
    ]
    await jobs_api.app_state.redis.delete(*job_ids)  # the reply stream expired
    await grant("u1", 1000)
    again = await jobs_api.post(image_request(), headers=headers)
    assert again.status_code == 400 and again.json() == first.json()
    fresh = await jobs_api.post(image_request(), headers={"Idempotency-Key": "poor-2"})
    assert fresh.status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9".encode()])
async def test_a_malformed_key_is_a_400(jobs_api: JobsApi, key: str | bytes) -> None:
    r = await jobs_api.post(image_request(), headers={"Idempotency-Key": key})
    assert r.status_code == 400
    assert r.json()["message"] == "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
