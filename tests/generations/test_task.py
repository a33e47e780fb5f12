"""The generation's task resumes from what the database says was done: crashes at each stage,
redeliveries, too many attempts. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from models_registry.base import GeneratedVideo, GenerationJob
from service.core.db import write_transaction
from service.core.errors import AppError
from service.generations import repository as generations
from service.generations.status import GenerationStatus
from service.generations.task import GenerationTask
from service.ledger import service as ledger
from service.ledger.tables import LedgerEntry
from tests.factories import grant
from tests.generations.conftest import CountingStorage, body, make_job
from tests.workers.models import ScriptedModel, SimulatedCrash


async def entries(generation_id: str) -> list[dict[str, Any]]:
    return await LedgerEntry.select().where(LedgerEntry.generation_id == generation_id).order_by(LedgerEntry.id)


async def kinds(generation_id: str) -> list[str]:
    return [e["kind"] for e in await entries(generation_id)]


async def test_a_job_runs_once_and_a_redelivery_answers_the_same(task: GenerationTask, seeded, storage) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    reply = await task.run(job, 1)
    assert reply.status_code == 200, body(reply)
    assert body(reply)["credits"] == {"used": 750, "balance": 250.0}
    assert body(reply)["duration"] == "5s"
    again = await task.run(job, 2)
    assert again == reply
    assert await kinds("job-1") == ["debit"]
    assert ScriptedModel.generations["job-1"] == 1
    assert sum(storage.uploads.values()) == 1


@pytest.mark.parametrize("point", ["after_debit", "during_generation", "after_upload"])
async def test_a_crash_at_each_stage_is_resumed_without_a_second_charge(
    task: GenerationTask, seeded, storage: CountingStorage, crash_at, point: str
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at(point)
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    record = await generations.get("job-1")
    assert record is not None and record.status is GenerationStatus.RUNNING
    reply = await task.run(job, 2)
    assert reply.status_code == 200, body(reply)
    assert body(reply)["credits"] == {"used": 750, "balance": 250.0}
    assert await kinds("job-1") == ["debit"]
    assert await ledger.balance_of("u1") == 250
    assert ScriptedModel.submissions["job-1"] == 1  # the provider was paid once
    assert sum(storage.uploads.values()) == 1  # and the video uploaded once
    expected_generations = {"after_debit": 1, "during_generation": 2, "after_upload": 1}[point]
    assert ScriptedModel.generations["job-1"] == expected_generations
    record = await generations.get("job-1")
    assert record.status is GenerationStatus.SUCCEEDED and record.attempts == 2
    assert await storage.exists(body(reply)["s3Key"])


async def test_a_known_provider_request_is_resumed_never_resubmitted(task: GenerationTask, seeded) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"crash": [1]})
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    assert (await generations.get("job-1")).provider_request_id == "req-job-1-1"
    reply = await task.run(job, 2)
    assert reply.status_code == 200, body(reply)
    assert ScriptedModel.generations["job-1"] == 2
    assert ScriptedModel.submissions["job-1"] == 1


async def test_after_max_attempts_a_charged_job_fails_refunded_with_the_spec_500(
    task: GenerationTask, seeded, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    max_attempts = seeded.job_max_attempts
    reply = await task.run(job, max_attempts + 1)
    assert reply.status_code == 500
    assert body(reply) == {
        "statusCode": 500,
        "error": "Internal Server Error",
        "message": f"Image-to-video generation failed: the job was interrupted {max_attempts} times and was not "
        "retried again",
    }
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000
    assert (await generations.get("job-1")).status is GenerationStatus.FAILED
    assert ScriptedModel.generations["job-1"] == 0
    assert await task.run(job, max_attempts + 2) == reply  # and it stays that way


async def test_after_max_attempts_an_uncharged_job_fails_without_moving_credits(task: GenerationTask, seeded) -> None:
    await grant("u1", 1000)
    reply = await task.run(make_job(seeded), seeded.job_max_attempts + 1)
    assert reply.status_code == 500
    assert await generations.get("job-1") is None
    assert await entries("job-1") == []
    assert await ledger.balance_of("u1") == 1000


async def test_a_generation_refunded_while_it_ran_is_failed_not_made_for_free(
    task: GenerationTask, seeded, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    async with write_transaction():  # an admin refunded it while its worker was gone
        await ledger.refund("job-1", actor="admin1", reason="customer asked")
        await generations.record_refund("job-1", 750)
    reply = await task.run(job, 2)
    assert reply.status_code == 500
    assert body(reply)["message"] == "Image-to-video generation failed: the generation was refunded before it finished"
    assert await kinds("job-1") == ["debit", "refund"]
    assert (await generations.get("job-1")).status is GenerationStatus.FAILED
    assert ScriptedModel.generations["job-1"] == 0  # refunded work is never done for free


async def test_insufficient_credits_refuses_before_anything_is_written(task: GenerationTask, seeded) -> None:
    await grant("u1", 100)
    reply = await task.run(make_job(seeded), 1)
    assert reply.status_code == 400
    assert body(reply)["message"] == "Insufficient credits. Required: 750, Available: 100.0"
    assert await generations.get("job-1") is None
    assert await ledger.balance_of("u1") == 100


async def test_a_source_image_gone_before_the_resume_fails_and_refunds(
    task: GenerationTask, seeded, storage: CountingStorage, crash_at
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    await storage.delete(job.source_key)
    reply = await task.run(job, 2)
    assert reply.status_code == 404
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000


async def test_a_model_failure_is_refunded_once(task: GenerationTask, seeded) -> None:
    await grant("u1", 1000)
    job = make_job(seeded, options={"fail": "the provider said no"})
    reply = await task.run(job, 1)
    assert reply.status_code == 500
    assert body(reply)["message"] == "Image-to-video generation failed: the provider said no"
    assert await task.run(job, 2) == reply
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000


async def test_an_unknown_model_refunds_a_charged_job(task: GenerationTask, seeded, crash_at) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    crash_at("after_debit")
    with pytest.raises(SimulatedCrash):
        await task.run(job, 1)
    reply = await task.reject(job, AppError("model gone", 400))
    assert reply.status_code == 400
    assert await kinds("job-1") == ["debit", "refund"]


async def test_a_failed_upload_is_a_failed_generation_refunded_once(
    task: GenerationTask, seeded, storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_put_file(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("AccessDenied: the bucket refused the upload")

    monkeypatch.setattr(storage, "put_file", broken_put_file)
    await grant("u1", 1000)
    reply = await task.run(make_job(seeded), 1)
    assert reply.status_code == 500
    assert body(reply)["message"] == (
        "Image-to-video generation failed: storing the video failed: AccessDenied: the bucket refused the upload"
    )
    assert await kinds("job-1") == ["debit", "refund"]
    assert await ledger.balance_of("u1") == 1000
    assert (await generations.get("job-1")).status is GenerationStatus.FAILED


class KeylessModel(ScriptedModel):
    """A model installed in this worker but unable to run here (its key is missing)."""

    name = "keyless"

    def readiness(self) -> str | None:
        return "KEYLESS_KEY is not set"


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("keyless", {}, "model keyless is not available here: KEYLESS_KEY is not set"),
        ("scripted", {"colour": "red"}, "options.property colour should not exist"),
    ],
)
async def test_a_job_this_worker_cannot_run_is_refused_before_any_charge(
    worker_db, storage, seeded, model: str, options: dict[str, Any], message: str
) -> None:
    """The API checked the job; the worker checks again where it runs (its environment may differ)."""
    from models_registry.registry import ModelRegistry

    await grant("u1", 1000)
    task = GenerationTask(worker_db, ModelRegistry.load(extra=[ScriptedModel, KeylessModel]), storage)
    reply = await task.run(make_job(seeded, model=model, options=options), 1)
    assert reply.status_code == 400 and body(reply)["message"] == [message]
    assert await generations.get("job-1") is None and await ledger.balance_of("u1") == 1000
    assert sum(storage.uploads.values()) == 0


class UrlWantingModel(ScriptedModel):
    """Wants a presigned URL of the source image (as the fal models do with FAL_SEND_IMAGE_URL)."""

    name = "url-wanting"
    wants_image_url = True
    seen: ClassVar[list[str | None]] = []

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        self.seen.append(job.image.url)
        return await super().generate(job)


async def test_a_model_that_wants_an_image_url_gets_one_and_others_do_not(worker_db, storage, seeded) -> None:
    from models_registry.registry import ModelRegistry

    await grant("u1", 2000)
    task = GenerationTask(worker_db, ModelRegistry.load(extra=[ScriptedModel, UrlWantingModel]), storage)
    UrlWantingModel.seen.clear()
    assert (await task.run(make_job(seeded, model="url-wanting"), 1)).status_code == 200
    [url] = UrlWantingModel.seen
    assert url is not None and "images/u1/source-image.png" in url
    assert (await task.run(make_job(seeded, job_id="job-2"), 1)).status_code == 200  # scripted: no URL asked
