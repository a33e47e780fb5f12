"""The pipeline resumes from what the database says was done: crashes at each stage, redeliveries,
too many attempts. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from service.generations import repository as generations
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from tests.factories import grant
from tests.workers.conftest import CountingStorage, make_job
from tests.workers.models import ScriptedModel, SimulatedCrash
from workers.pipeline import Pipeline


async def entries(generation_id: str) -> list[dict[str, Any]]:
    return await LedgerEntry.select().where(LedgerEntry.generation_id == generation_id).order_by(LedgerEntry.id)


async def kinds(generation_id: str) -> list[str]:
    return [e["kind"] for e in await entries(generation_id)]


async def test_a_job_runs_once_and_a_redelivery_answers_the_same(pipeline: Pipeline, seeded, storage) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    reply = await pipeline.run(job, 1)
    assert reply.status_code == 200, reply.body
    assert reply.body["credits"] == {"used": 750, "balance": 250.0}
    assert reply.body["duration"] == "5s"
    again = await pipeline.run(job, 2)
    assert again == reply
    assert await kinds("job-1") == ["debit"]
    assert ScriptedModel.generations["job-1"] == 1
    assert sum(storage.uploads.values()) == 1


@pytest.mark.parametrize("point", ["after_debit", "during_generation", "after_upload"])
async def test_a_crash_at_each_stage_is_resumed_without_a_second_charge(
    pipeline: Pipeline, seeded, storage: CountingStorage, crash_at, point: str
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at(point)
    with pytest.raises(SimulatedCrash):
        await pipeline.run(job, 1)
    record = await generations.get("job-1")
    assert record is not None and record["status"] not in ("succeeded", "failed")
    reply = await pipeline.run(job, 2)
    assert reply.status_code == 200, reply.body
    assert reply.body["credits"] == {"used": 750, "balance": 250.0}
    assert await kinds("job-1") == ["debit"]
    assert await ledger.balance_of("u1") == 250
    assert ScriptedModel.submissions["job-1"] == 1  # the provider was paid once
    assert sum(storage.uploads.values()) == 1  # and the video uploaded once
    expected_generations = {"after_debit": 1, "during_generation": 2, "after_upload": 1}[point]
    assert ScriptedModel.generations["job-1"] == expected_generations
    record = await generations.get("job-1")
    assert record["status"] == "succeeded" and record["attempts"] == (1 if point == "after_upload" else 2)
    assert await storage.exists(reply.body["s3Key"])


async def test_a_known_provider_request_is_resumed_never_resubmitted(pipeline: Pipeline, seeded) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"crash": [1]})
    with pytest.raises(SimulatedCrash):
        await pipeline.run(job, 1)
    assert (await generations.get("job-1"))["provider_request_id"] == "req-job-1-1"
    reply = await pipeline.run(job, 2)
    assert reply.status_code == 200, reply.body
    assert ScriptedModel.generations["job-1"] == 2
    assert ScriptedModel.submissions["job-1"] == 1


async def test_after_max_attempts_a_charged_job_fails_refunded_with_the_spec_500(
    pipeline: Pipeline, seeded, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await pipeline.run(job, 1)
    max_attempts = seeded.job_max_attempts
    reply = await pipeline.run(job, max_attempts + 1)
    assert reply.status_code == 500
    assert reply.body == {
        "statusCode": 500, "error": "Internal Server Error",
        "message": f"Image-to-video generation failed: the job was interrupted {max_attempts} times and was not "
                   "retried again",
    }
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000
    assert (await generations.get("job-1"))["status"] == "failed"
    assert ScriptedModel.generations["job-1"] == 0
    assert await pipeline.run(job, max_attempts + 2) == reply  # and it stays that way


async def test_after_max_attempts_an_uncharged_job_fails_without_moving_credits(pipeline: Pipeline, seeded) -> None:
    await grant("u1", 1000)
    reply = await pipeline.run(make_job(seeded), seeded.job_max_attempts + 1)
    assert reply.status_code == 500
    assert await generations.get("job-1") is None
    assert await entries("job-1") == []
    assert await ledger.balance_of("u1") == 1000


async def test_a_refund_whose_failure_was_not_recorded_is_finished_not_repeated(
    pipeline: Pipeline, seeded, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await pipeline.run(job, 1)
    # as if the failing delivery died between the refund and the terminal status
    await generations.update("job-1", error="Image-to-video generation failed: boom", error_status=500)
    await ledger.refund_generation("job-1", actor=ledger.SYSTEM, reason="generation failed: boom")
    reply = await pipeline.run(job, 2)
    assert reply.status_code == 500
    assert reply.body["message"] == "Image-to-video generation failed: boom"
    assert await kinds("job-1") == ["debit", "refund"]
    assert (await generations.get("job-1"))["status"] == "failed"
    assert ScriptedModel.generations["job-1"] == 0  # refunded work is never done for free


async def test_insufficient_credits_refuses_before_anything_is_written(pipeline: Pipeline, seeded) -> None:
    await grant("u1", 100)
    reply = await pipeline.run(make_job(seeded), 1)
    assert reply.status_code == 400
    assert reply.body["message"] == "Insufficient credits. Required: 750, Available: 100.0"
    assert await generations.get("job-1") is None
    assert await ledger.balance_of("u1") == 100


async def test_a_source_image_gone_before_the_resume_fails_and_refunds(
    pipeline: Pipeline, seeded, storage: CountingStorage, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await pipeline.run(job, 1)
    await storage.delete(job.source_key)
    reply = await pipeline.run(job, 2)
    assert reply.status_code == 404
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000


async def test_a_model_failure_is_refunded_once(pipeline: Pipeline, seeded) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"fail": "the provider said no"})
    reply = await pipeline.run(job, 1)
    assert reply.status_code == 500
    assert reply.body["message"] == "Image-to-video generation failed: the provider said no"
    assert await pipeline.run(job, 2) == reply
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000


async def test_an_unknown_model_refunds_a_charged_job(pipeline: Pipeline, seeded, crash_at) -> None:
    from service.core.errors import AppError

    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await pipeline.run(job, 1)
    reply = await pipeline.reject(job, AppError("model gone", 400))
    assert reply.status_code == 400
    assert await kinds("job-1") == ["debit", "refund"]


async def test_a_failed_upload_is_a_failed_generation_refunded_once(pipeline: Pipeline, seeded, storage,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_put_file(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("AccessDenied: the bucket refused the upload")

    monkeypatch.setattr(storage, "put_file", broken_put_file)
    await grant("u1", 1000)
    reply = await pipeline.run(make_job(seeded), 1)
    assert reply.status_code == 500
    assert reply.body["message"] == ("Image-to-video generation failed: storing the video failed: "
                                     "AccessDenied: the bucket refused the upload")
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000
    assert (await generations.get("job-1"))["status"] == "failed"
