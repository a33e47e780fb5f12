"""A delivery's work on a generation it runs: start it (check the source, charge), resume it,
produce the video (generate, store), and end it (succeeded, failed and refunded, or stopped).

``task.py`` decides which of these a delivery does, from the database's record. Only the model's
own errors, the source image's, and a store refusing the upload fail a generation; an outage
(``is_transient``) propagates, and the worker runs the delivery again once it is over.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from models_registry.base import ModelPlugin, SourceImage
from models_registry.errors import ModelError
from models_registry.registry import ModelRegistry
from service.core.errors import AppError, GenerationFailed, InsufficientCredits, Transient, from_model_error
from service.core.settings import Settings
from service.core.transient import is_transient
from service.generations import batched, repository, settlement, transitions
from service.generations.outcomes import error_reply, reply_from_record, success_reply
from service.generations.production import Fault, Production
from service.generations.records import GenerationRecord, NewGeneration
from service.generations.sources import load_source
from service.generations.status import GenerationStatus
from service.generations.stops import Stopped
from service.jobs.messages import JobMessage, JobReply
from service.ledger import service as ledger
from service.storage.base import Storage
from service.storage.images import output_key

log = structlog.get_logger(__name__)
CheckLease = Callable[[], Awaitable[None]]
Started = Callable[[JobMessage, GenerationRecord], Awaitable[None]]


class Runner:
    """Runs the generations of one worker process's deliveries (``GenerationTask`` owns one)."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        storage: Storage,
        production: Production,
        *,
        fault: Fault,
        on_started: Started,
    ) -> None:
        self.settings, self.registry, self.storage, self.production = settings, registry, storage, production
        self.fault, self.on_started = fault, on_started

    async def start(self, job: JobMessage, attempts: int, check_lease: CheckLease) -> JobReply:
        try:
            # The API checked it; checked again where it runs (this worker may lack the model's key).
            request = self.registry.resolve(job.model, job.duration, job.options)
        except ModelError as exc:
            return error_reply(job.job_id, from_model_error(exc))  # refused before any credit moved
        plugin = request.plugin
        try:
            image = await load_source(self.storage, self.settings, job, plugin)
        except AppError as exc:
            return error_reply(job.job_id, exc)  # refused before any credit moved
        await check_lease()
        new = NewGeneration(
            id=job.job_id,
            user_id=job.user_id,
            model=job.model,
            prompt=job.prompt,
            source_key=job.source_key,
            requested_duration=job.duration,
            project_id=job.project_id,
            idempotency_key=job.idempotency_key,
        )
        try:
            charged = await settlement.charge(new, cost=request.cost, attempts=attempts)
        except InsufficientCredits as exc:
            return error_reply(job.job_id, exc)  # nothing written
        self.fault("after_debit", job.job_id)
        await self.on_started(job, charged.record)
        await self.production.announce(job.job_id)
        return await self._produce(job, plugin, image, charged.record, check_lease)

    async def resume(
        self, job: JobMessage, record: GenerationRecord, delivery: int, check_lease: CheckLease
    ) -> JobReply:
        record = await transitions.resume(job.job_id, attempts=delivery) or record
        if record.status is not GenerationStatus.RUNNING:
            return await reply_from_record(record)
        await self.on_started(job, record)
        key = output_key(job.user_id, job.job_id, record.created_at)
        length = await self.production.stored_length(key)
        if length is not None:  # generated and stored by a delivery that died before recording it
            return await self._succeed(record, key, length, _elapsed_ms(record))
        plugin = self.registry.get(job.model)
        try:
            image = await load_source(self.storage, self.settings, job, plugin)
        except AppError as exc:
            return await self.fail(record, exc)
        await check_lease()
        return await self._produce(job, plugin, image, record, check_lease)

    async def _produce(
        self,
        job: JobMessage,
        plugin: ModelPlugin,
        image: SourceImage,
        record: GenerationRecord,
        check_lease: CheckLease,
    ) -> JobReply:
        started = time.monotonic()
        key = output_key(job.user_id, job.job_id, record.created_at)
        async with self.production.workdirs.lease() as tmp:
            try:
                video = await self.production.generate(plugin, job, image, record, tmp)
            except Stopped:
                return await self._stopped(plugin, record)
            except Transient:
                raise  # the provider's request id could not be recorded: retried, resumed
            except Exception as exc:  # whatever the model raises is a verdict on this generation
                return await self.fail(record, _generation_error(exc, plugin))
            await check_lease()
            if self.production.stops.requested(job.job_id):
                return await self._stopped(plugin, record)
            try:
                await self.production.store(key, job, video, tmp)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the network or the disk: retried, not a verdict
                return await self.fail(record, GenerationFailed(f"storing the video failed: {exc}"))
        self.fault("after_upload", job.job_id)
        return await self._succeed(record, key, video.duration_seconds, int((time.monotonic() - started) * 1000))

    async def _succeed(self, record: GenerationRecord, key: str, length: float, ms: int) -> JobReply:
        self.production.forget(record.id)
        done = await batched.succeed(record, output_key=key, duration_seconds=length, generation_ms=ms)
        if done is None:  # another delivery ended it first: answer what it recorded
            return await reply_from_record(await self._current(record.id))
        return success_reply(done.record, done.balance)

    async def fail(self, record: GenerationRecord, exc: AppError) -> JobReply:
        log.warning("generation.failed", job_id=record.id, error=str(exc), status=exc.status_code)
        self.production.forget(record.id)
        return await reply_from_record(await settlement.fail(record, exc))

    async def _stopped(self, plugin: ModelPlugin, record: GenerationRecord) -> JobReply:
        """The model run of a cancelled job was stopped: cancel its provider request, answer."""
        log.info("generation.stopped", job_id=record.id)
        await self.production.cancel_with_provider(plugin, record)
        self.production.forget(record.id)
        current = await self._current(record.id)
        if current.status is GenerationStatus.RUNNING:  # never announced before the record says so
            current = await settlement.cancel(current, actor=ledger.SYSTEM)
        return await reply_from_record(current)

    @staticmethod
    async def _current(generation_id: str) -> GenerationRecord:
        record = await repository.get(generation_id)
        assert record is not None
        return record


def _generation_error(exc: Exception, plugin: ModelPlugin) -> AppError:
    if isinstance(exc, TimeoutError):
        return GenerationFailed(f"model {plugin.name} timed out after {plugin.timeout_seconds:g}s")
    if isinstance(exc, ModelError):
        return from_model_error(exc)
    if isinstance(exc, AppError):
        return exc
    log.error("generation.plugin_error", model=plugin.name, error=repr(exc))
    return GenerationFailed(str(exc) or type(exc).__name__)


def _elapsed_ms(record: GenerationRecord) -> int:
    since = record.started_at or record.created_at
    return max(int((repository.now() - since).total_seconds() * 1000), 0)
