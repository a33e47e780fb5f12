"""One job, start to finish: check the source, charge, generate, store, record, reply.

Every step is safe to run again. The generation row is created with the debit (one transaction),
so a redelivered job finds it and resumes: it is never charged twice, a known provider request is
resumed rather than resubmitted, and a stored video is not uploaded again.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from models_registry.base import GenerationJob, ModelPlugin, Progress, SourceImage
from models_registry.registry import ModelRegistry
from service.core.errors import AppError, Conflict, GenerationFailed
from service.core.settings import Settings
from service.generations import repository as generations
from service.generations.schemas import format_duration
from service.jobs.messages import JobMessage, JobReply
from service.ledger import service as ledger
from service.storage.base import Storage
from service.storage.images import load_source_image, output_key

log = structlog.get_logger(__name__)


@dataclass
class Pipeline:
    settings: Settings
    registry: ModelRegistry
    storage: Storage

    async def run(self, job: JobMessage, delivery: int) -> JobReply:
        """Run ``job`` (its ``delivery``-th delivery) to a terminal reply."""
        record = await generations.get(job.job_id)
        if record is not None and record["status"] in generations.TERMINAL:
            return await self._reply_from_record(record)
        plugin = self.registry.get(job.model)
        try:
            image = await self._source(job)
        except AppError as exc:
            if record is None:
                return error_reply(job.job_id, exc)  # refused before any credit moved
            return await self._fail(job, exc)
        if record is None:
            record = await self._charge(job, plugin)
            if isinstance(record, JobReply):
                return record
        if delivery > self.settings.job_max_attempts:
            return await self._fail(job, GenerationFailed(f"gave up after {delivery - 1} attempts"))
        try:
            return await self._generate_and_store(job, plugin, image, record, delivery)
        except AppError as exc:
            return await self._fail(job, exc)
        except Exception as exc:  # a plugin's unexpected error still ends the job, refunded
            log.exception("pipeline.unexpected", job_id=job.job_id)
            return await self._fail(job, GenerationFailed(str(exc) or type(exc).__name__))

    async def _source(self, job: JobMessage) -> SourceImage:
        return await load_source_image(self.storage, job.source_key, user_id=job.user_id,
                                       prefix_template=self.settings.source_key_prefix,
                                       max_bytes=self.settings.max_source_bytes)

    async def _charge(self, job: JobMessage, plugin: ModelPlugin) -> dict[str, Any] | JobReply:
        record = dict(id=job.job_id, user_id=job.user_id, project_id=job.project_id, model=job.model,
                      prompt=job.prompt, source_key=job.source_key, requested_duration=job.duration,
                      status="charged", idempotency_key=job.idempotency_key)
        try:
            await ledger.charge_generation(record, plugin.cost(job.duration))
        except Conflict:
            pass  # charged by an earlier delivery that died before it could say so
        except AppError as exc:
            return error_reply(job.job_id, exc)
        return await generations.get(job.job_id)

    async def _generate_and_store(self, job: JobMessage, plugin: ModelPlugin, image: SourceImage,
                                  record: dict[str, Any], delivery: int) -> JobReply:
        started = time.monotonic()
        await generations.mark_started(job.job_id, delivery)
        key = record["output_key"] or output_key(job.user_id, job.job_id, record["created_at"])
        with tempfile.TemporaryDirectory(prefix=f"video-gen-{job.job_id}-") as tmp:
            try:
                video = await asyncio.wait_for(
                    plugin.generate(self._generation_job(job, image, record, Path(tmp))), plugin.timeout_seconds
                )
            except asyncio.TimeoutError:
                raise GenerationFailed(f"model {plugin.name} timed out after {plugin.timeout_seconds:g}s") from None
            await self.storage.put_file(key, video.path, content_type=video.content_type,
                                        metadata={"generation-id": job.job_id, "model": job.model})
        await generations.update(job.job_id, status="uploaded", output_key=key, duration_seconds=video.duration_seconds)
        elapsed = int((time.monotonic() - started) * 1000)
        await generations.mark_succeeded(job.job_id, output_key=key, duration_seconds=video.duration_seconds,
                                         generation_ms=elapsed)
        return await self._reply_from_record(await generations.get(job.job_id))

    def _generation_job(self, job: JobMessage, image: SourceImage, record: dict[str, Any], workdir: Path) -> GenerationJob:
        last = [0.0]

        async def progress(p: Progress) -> None:
            if time.monotonic() - last[0] >= 1.0 or p.fraction == 1.0:  # at most one write a second
                last[0] = time.monotonic()
                await generations.update(job.job_id, progress={"message": p.message, "fraction": p.fraction,
                                                               "queuePosition": p.queue_position})

        async def save_request_id(request_id: str) -> None:
            await generations.update(job.job_id, provider_request_id=request_id)

        return GenerationJob(job_id=job.job_id, prompt=job.prompt, duration=job.duration, image=image,
                             workdir=workdir, options=dict(job.options),
                             provider_request_id=record.get("provider_request_id"),
                             report_progress=progress, save_provider_request_id=save_request_id)

    async def _fail(self, job: JobMessage, exc: AppError) -> JobReply:
        """Record the failure and refund the charge (once: the ledger refuses a second refund)."""
        log.warning("pipeline.failed", job_id=job.job_id, error=str(exc.message), status=exc.status_code)
        try:
            await ledger.refund_generation(job.job_id, actor=ledger.SYSTEM, reason=f"generation failed: {exc.message}")
        except Conflict:
            pass  # refunded by an earlier delivery
        await generations.update(job.job_id, status="failed", error=str(exc.message), error_status=exc.status_code,
                                 finished_at=generations.now())
        return await self._reply_from_record(await generations.get(job.job_id))

    async def _reply_from_record(self, record: dict[str, Any]) -> JobReply:
        if record["status"] == "failed":
            err = AppError(record["error"] or "Image-to-video generation failed", record["error_status"] or 500)
            return error_reply(record["id"], err)
        body = {
            "success": True, "s3Key": record["output_key"], "model": record["model"],
            "credits": {"used": record["credits_charged"], "balance": float(await ledger.balance_of(record["user_id"]))},
            "duration": format_duration(record["duration_seconds"]), "generationTime": record["generation_ms"] or 0,
        }
        return JobReply(job_id=record["id"], status_code=200, body=body)


def error_reply(job_id: str, exc: AppError) -> JobReply:
    return JobReply(job_id=job_id, status_code=exc.status_code, body=exc.body())
