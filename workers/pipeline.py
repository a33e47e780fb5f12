"""One job, start to finish: check the source, charge, generate, store, record, reply.

Every step is safe to run again, and a job picked up again (by this worker after an outage, or by
another after a crash) resumes from what the database says was done:

| the record says                                   | the next delivery                               |
| ------------------------------------------------- | ----------------------------------------------- |
| nothing (not charged)                             | checks the source and charges (once: the debit is unique per generation) |
| charged / generating, provider request id known   | resumes that provider request, never resubmits  |
| output key and length recorded, object in storage | records success: no generation, no upload       |
| refunded but not marked failed                    | marks it failed (no second refund)              |
| succeeded / failed                                | answers from the record                         |

The generation row is created with the debit (one transaction), so a generation exists if and
only if it was charged. ``JOB_MAX_ATTEMPTS`` bounds deliveries: the delivery after the last
allowed one fails the job (refunded if charged) with the spec's 500 instead of running it.

The pipeline never decides a job's fate on an outage: a database or Redis error raised by its own
steps propagates, and the consumer retries the whole (idempotent) run once the outage is over.
Only the model's own errors, and the source image's, fail a job.
"""

from __future__ import annotations

import dataclasses

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from models_registry.base import GenerationJob, ModelPlugin, Progress, SourceImage
from models_registry.registry import ModelRegistry
from service.core.errors import AppError, Conflict, GenerationFailed
from service.core.settings import Settings
from service.generations import repository as generations
from service.jobs.messages import JobMessage, JobReply
from service.jobs.outcomes import GENERIC_FAILURE, error_reply, reply_from_record
from service.ledger import service as ledger
from service.storage.base import Storage
from service.storage.images import load_source_image, output_key
from workers.faults import crash_point

log = structlog.get_logger(__name__)

__all__ = ["Interrupted", "LeaseLost", "Pipeline", "error_reply"]


class Interrupted(Exception):
    """The run stops without a verdict on the job; the consumer retries it (``transient``) or
    leaves it to be redelivered."""

    transient = True


class LeaseLost(Interrupted):
    """Another worker reclaimed this job: stop at once, neither reply nor acknowledge."""

    transient = False


async def _always_ours() -> None:
    return None


def _text(message: str | list[str]) -> str:
    return message if isinstance(message, str) else "; ".join(message)


@dataclass
class Pipeline:
    settings: Settings
    registry: ModelRegistry
    storage: Storage
    # Provider request ids this process saw, in case the database missed one: an in-process retry
    # after an outage then resumes the request instead of paying for a second one.
    _request_ids: dict[str, str] = field(default_factory=dict)

    async def run(self, job: JobMessage, delivery: int, *,
                  fence: Callable[[], Awaitable[None]] = _always_ours) -> JobReply:
        """Run ``job`` (its ``delivery``-th delivery) to a terminal reply.

        ``fence`` raises ``LeaseLost`` when this worker no longer holds the job; it is checked
        before each step that costs money or cannot be undone (charge, generate, upload).
        """
        record = await generations.get(job.job_id)
        if record is not None and (settled := await self._settle(job, record)) is not None:
            return settled
        if delivery > self.settings.job_max_attempts:
            return await self.give_up(job, record, delivery)
        plugin = self.registry.get(job.model)
        image: SourceImage | None = None
        if record is None:
            try:
                image = await self._source(job)
            except AppError as exc:
                return error_reply(job.job_id, exc)  # refused before any credit moved
            await fence()
            charged = await self._charge(job, plugin)
            if isinstance(charged, JobReply):
                return charged
            record = charged
            crash_point("after_debit", job.job_id)
        if await self._stored(record):  # generated and uploaded by an earlier delivery
            return await self._succeed(record)
        if image is None:
            try:
                image = await self._source(job)
            except AppError as exc:
                return await self._fail(job, exc)
        await fence()
        return await self._generate_and_store(job, plugin, image, record, delivery, fence)

    async def give_up(self, job: JobMessage, record: dict[str, Any] | None, delivery: int) -> JobReply:
        """The spec's 500 for a job delivered too often; refunded when it was charged."""
        log.error("pipeline.give_up", job_id=job.job_id, delivery=delivery)
        exc = GenerationFailed(f"the job was interrupted {delivery - 1} times and was not retried again")
        if record is None:
            return error_reply(job.job_id, exc)
        return await self._fail(job, exc)

    async def reject(self, job: JobMessage, exc: AppError) -> JobReply:
        """Fail ``job`` without running it (e.g. its model is not installed here); refund if charged."""
        record = await generations.get(job.job_id)
        if record is None:
            return error_reply(job.job_id, exc)
        if (settled := await self._settle(job, record)) is not None:
            return settled
        return await self._fail(job, exc)

    async def _settle(self, job: JobMessage, record: dict[str, Any]) -> JobReply | None:
        """The reply of a record that is (or must be made) terminal; None when work remains."""
        if record["status"] == "succeeded":
            return await reply_from_record(record)
        if record["status"] == "failed" and (record["credits_refunded"] > 0 or record["credits_charged"] <= 0):
            return await reply_from_record(record)
        if record["status"] == "failed" or record["credits_refunded"] > 0:
            # failed (or refunded by a delivery that died before recording the failure): finish it
            err = AppError(record["error"] or GENERIC_FAILURE, record["error_status"] or 500)
            return await self._fail(job, err)
        return None

    async def _source(self, job: JobMessage) -> SourceImage:
        """The checked source image, read once; with ``FAL_SEND_IMAGE_URL`` also a presigned URL."""
        image = await load_source_image(self.storage, job.source_key, user_id=job.user_id,
                                        prefix_template=self.settings.source_key_prefix,
                                        max_bytes=self.settings.max_source_bytes)
        if self.settings.fal_send_image_url:
            url = await self.storage.download_url(job.source_key, expires_in=self.settings.download_url_seconds)
            image = dataclasses.replace(image, url=url)
        return image

    async def _charge(self, job: JobMessage, plugin: ModelPlugin) -> dict[str, Any] | JobReply:
        record = dict(id=job.job_id, user_id=job.user_id, project_id=job.project_id, model=job.model,
                      prompt=job.prompt, source_key=job.source_key, requested_duration=job.duration,
                      status="charged", idempotency_key=job.idempotency_key)
        try:
            await ledger.charge_generation(record, plugin.cost(job.duration))
        except Conflict:
            pass  # charged by an earlier delivery that died before it could say so
        except AppError as exc:
            return error_reply(job.job_id, exc)  # insufficient credits: nothing written
        charged = await generations.get(job.job_id)
        assert charged is not None
        return charged

    async def _stored(self, record: dict[str, Any]) -> bool:
        key = record["output_key"]
        return bool(key) and record["duration_seconds"] is not None and await self.storage.exists(key)

    async def _generate_and_store(self, job: JobMessage, plugin: ModelPlugin, image: SourceImage,
                                  record: dict[str, Any], delivery: int,
                                  fence: Callable[[], Awaitable[None]]) -> JobReply:
        started = time.monotonic()
        first_start = {} if record["started_at"] else {"started_at": generations.now()}
        await generations.update(job.job_id, status="generating", attempts=delivery, **first_start)
        key = record["output_key"] or output_key(job.user_id, job.job_id, record["created_at"])
        with tempfile.TemporaryDirectory(prefix=f"video-gen-{job.job_id}-") as tmp:
            try:
                video = await asyncio.wait_for(
                    plugin.generate(self._generation_job(job, image, record, Path(tmp))), plugin.timeout_seconds
                )
            except Interrupted:
                raise
            except asyncio.TimeoutError:
                return await self._fail(job, GenerationFailed(
                    f"model {plugin.name} timed out after {plugin.timeout_seconds:g}s"))
            except AppError as exc:
                return await self._fail(job, exc)
            except Exception as exc:  # a plugin's unexpected error still ends the job, refunded
                log.exception("pipeline.plugin_error", job_id=job.job_id)
                return await self._fail(job, GenerationFailed(str(exc) or type(exc).__name__))
            # Recorded before the upload: a delivery that finds the object knows it is complete.
            await generations.update(job.job_id, output_key=key, duration_seconds=video.duration_seconds)
            await fence()
            try:
                await self.storage.put_file(key, video.path, content_type=video.content_type,
                                            metadata={"generation-id": job.job_id, "model": job.model})
            except OSError:
                raise  # the network or disk: an outage the consumer retries, not a verdict
            except Exception as exc:  # refused by the store (denied, no bucket...): a failed generation
                return await self._fail(job, GenerationFailed(f"storing the video failed: {exc}"))
        crash_point("after_upload", job.job_id)
        elapsed = int((time.monotonic() - started) * 1000)
        await generations.update(job.job_id, status="uploaded", generation_ms=elapsed)
        self._request_ids.pop(job.job_id, None)
        record = await generations.get(job.job_id)
        assert record is not None
        return await self._succeed(record)

    async def _succeed(self, record: dict[str, Any]) -> JobReply:
        ms = record["generation_ms"]
        if ms is None:  # stored by a delivery that died before recording its time: count from the start
            since = record["started_at"] or record["created_at"]
            ms = max(int((generations.now() - since).total_seconds() * 1000), 0)
        await generations.mark_succeeded(record["id"], output_key=record["output_key"],
                                         duration_seconds=record["duration_seconds"], generation_ms=ms)
        done = await generations.get(record["id"])
        assert done is not None
        return await reply_from_record(done)

    def _generation_job(self, job: JobMessage, image: SourceImage, record: dict[str, Any], workdir: Path) -> GenerationJob:
        last = [0.0]

        async def progress(p: Progress) -> None:
            crash_point("during_generation", job.job_id)
            if time.monotonic() - last[0] < 1.0 and p.fraction != 1.0:  # at most one write a second
                return
            last[0] = time.monotonic()
            try:  # best effort: a progress report never fails a generation
                await generations.update(job.job_id, progress={"message": p.message, "fraction": p.fraction,
                                                               "queuePosition": p.queue_position})
            except Exception as exc:
                log.warning("pipeline.progress_not_saved", job_id=job.job_id, error=str(exc) or type(exc).__name__)

        async def save_request_id(request_id: str) -> None:
            self._request_ids[job.job_id] = request_id
            delay = 0.2
            for _ in range(12):  # about a minute: the provider is already working (and billing)
                try:
                    await generations.update(job.job_id, provider_request_id=request_id)
                    break
                except Exception as exc:
                    log.warning("pipeline.request_id_not_saved", job_id=job.job_id, error=str(exc) or type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 8.0)
            else:
                raise Interrupted(f"could not record provider request {request_id}")
            crash_point("during_generation", job.job_id)

        request_id = record.get("provider_request_id") or self._request_ids.get(job.job_id)
        return GenerationJob(job_id=job.job_id, prompt=job.prompt, duration=job.duration, image=image,
                             workdir=workdir, options=dict(job.options), provider_request_id=request_id,
                             report_progress=progress, save_provider_request_id=save_request_id)

    async def _fail(self, job: JobMessage, exc: AppError) -> JobReply:
        """Record the failure and refund the charge, once, in an order a crash cannot break:
        the error first, then the refund (unique per generation), then the terminal status."""
        log.warning("pipeline.failed", job_id=job.job_id, error=_text(exc.message), status=exc.status_code)
        self._request_ids.pop(job.job_id, None)
        await generations.update(job.job_id, error=_text(exc.message), error_status=exc.status_code)
        record = await generations.get(job.job_id)
        assert record is not None
        if record["credits_charged"] > 0 and record["credits_refunded"] == 0:
            try:
                await ledger.refund_generation(job.job_id, actor=ledger.SYSTEM,
                                               reason=f"generation failed: {_text(exc.message)}")
            except Conflict:
                pass  # refunded by an earlier delivery
        await generations.update(job.job_id, status="failed", finished_at=generations.now())
        record = await generations.get(job.job_id)
        assert record is not None
        return await reply_from_record(record)
