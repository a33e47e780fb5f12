"""The generation's task: what a worker does with one delivery of a job, up to its reply.

It dispatches on what the database says (``GenerationStatus``), so every delivery of a job, the
first or one after a crash, ends the same way and moves money at most once:

- no record, first delivery: check the source, charge (creating the RUNNING record), generate,
  store, succeed; the database is not read first;
- no record, later delivery: the same, unless past ``JOB_MAX_ATTEMPTS``: the spec's 500, and
  nothing was charged;
- RUNNING: resume. A stored video is recorded (no second generation or upload); a known provider
  request is resumed, never resubmitted; past ``JOB_MAX_ATTEMPTS``, or refunded by an admin
  meanwhile: FAILED, refunded once;
- SUCCEEDED, FAILED or CANCELLED: answer from the record (a cancelled one whose provider request
  is known, left by a worker that died: that request is cancelled with the provider first).

A job cancelled while it runs (``cancel.py``; the record already says CANCELLED) has its model run
stopped (``stops.py``), its provider request cancelled, and is answered from its record; one
cancelled while its video is being stored is answered the same way once the upload is done (the
SUCCEEDED transition finds it cancelled).

Only the model's own errors, the source image's, and a store refusing the upload fail a job;
an outage (``is_transient``) propagates, and the worker runs the delivery again once it is over.
Before each step that costs money or cannot be undone, ``check_lease`` confirms the worker still
holds the job.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from models_registry.base import ModelPlugin, SourceImage
from models_registry.errors import ModelError
from models_registry.registry import ModelRegistry
from service.core import metrics
from service.core.errors import AppError, Cancelled, GenerationFailed, InsufficientCredits, Transient, from_model_error
from service.core.settings import Settings
from service.core.transient import is_transient
from service.generations import repository, settlement, transitions
from service.generations.outcomes import error_reply, outcome_of, reply_from_record, success_reply
from service.generations.production import Fault, Production, Publish
from service.generations.records import GenerationRecord
from service.generations.status import TERMINAL, GenerationStatus
from service.generations.stops import Stopped
from service.generations.transitions import NewGeneration
from service.jobs.messages import JobMessage, JobReply
from service.ledger import service as ledger
from service.storage.base import Storage
from service.storage.images import load_source_image, output_key

log = structlog.get_logger(__name__)
CheckLease = Callable[[], Awaitable[None]]
Started = Callable[[JobMessage, GenerationRecord], Awaitable[None]]


def _no_fault(point: str, job_id: str) -> None:
    return None


async def _held() -> None:
    return None


async def _untold(job: JobMessage, record: GenerationRecord) -> None:
    return None


class GenerationTask:
    """One per worker process: the registry, the storage and the settings every job needs.

    ``on_started`` is told of every charged job a delivery starts or resumes (the worker queues
    its ``generation.started`` webhook there)."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        storage: Storage,
        *,
        fault: Fault = _no_fault,
        on_started: Started = _untold,
        publish: Publish | None = None,
    ) -> None:
        """``publish`` tells the API processes following a job (``JobStream.publish``) that it
        started or progressed; without it nobody is told (they re-read the job now and then)."""
        self.settings, self.registry, self.storage, self.fault = settings, registry, storage, fault
        self.on_started = on_started
        self.production = Production(storage, fault, publish)

    def accepts(self, job: JobMessage) -> bool:
        """Whether this worker has the job's model."""
        return job.model in self.registry

    def cancel(self, job_id: str) -> bool:
        """``job_id`` was cancelled: stop its model run if this process runs it (False otherwise)."""
        return self.production.stops.request(job_id)

    async def run(self, job: JobMessage, delivery: int, check_lease: CheckLease = _held) -> JobReply:
        """The reply of ``job``'s ``delivery``-th delivery, doing whatever is left to do."""
        if delivery == 1:
            metrics.QUEUE_WAIT_SECONDS.labels(job.model).observe(max(time.time() - job.submitted_at, 0.0))
        with self.production.stops.tracking(job.job_id):
            reply = await self._run(job, delivery, check_lease)
        metrics.JOBS_FINISHED.labels(job.model, *outcome_of(reply)).inc()
        return reply

    async def _run(self, job: JobMessage, delivery: int, check_lease: CheckLease) -> JobReply:
        if delivery == 1:  # the happy path: the record cannot exist unless the job was queued twice
            try:
                return await self._start(job, 1, check_lease)
            except settlement.AlreadyExists:
                pass
        record = await repository.get(job.job_id)
        if record is None:
            if delivery > self.settings.job_max_attempts:
                return error_reply(job.job_id, self._given_up(delivery))
            return await self._start(job, delivery, check_lease)
        if record.status in TERMINAL:
            if record.status is GenerationStatus.CANCELLED and job.model in self.registry:
                await self.production.cancel_with_provider(self.registry.get(job.model), record)
            return await reply_from_record(record)
        if delivery > self.settings.job_max_attempts:
            return await self._fail(record, self._given_up(delivery))
        if record.credits_refunded:  # an admin refunded it while it ran: it is not made for free
            return await self._fail(record, GenerationFailed("the generation was refunded before it finished"))
        return await self._resume(job, record, delivery, check_lease)

    async def answered(self, job: JobMessage, reply: JobReply) -> None:
        """A redelivered job already has its reply (only the ack was missing, or the job was
        cancelled while its worker was dead): a cancelled job's provider request, which the dead
        worker may have left running, is cancelled with the provider."""
        if reply.status_code != Cancelled.status_code or job.model not in self.registry:
            return
        record = await repository.get(job.job_id)
        if record is not None and record.status is GenerationStatus.CANCELLED:
            await self.production.cancel_with_provider(self.registry.get(job.model), record)

    async def reject(self, job: JobMessage, exc: AppError) -> JobReply:
        """Fail ``job`` without running it (its model is not installed here); refunded if charged."""
        record = await repository.get(job.job_id)
        if record is None:
            return error_reply(job.job_id, exc)
        if record.status in TERMINAL:
            return await reply_from_record(record)
        return await self._fail(record, exc)

    async def _start(self, job: JobMessage, attempts: int, check_lease: CheckLease) -> JobReply:
        try:
            # The API checked it; checked again where it runs (this worker may lack the model's key).
            request = self.registry.resolve(job.model, job.duration, job.options)
        except ModelError as exc:
            return error_reply(job.job_id, from_model_error(exc))  # refused before any credit moved
        plugin = request.plugin
        try:
            image = await self._source(job, plugin)
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

    async def _resume(
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
            image = await self._source(job, plugin)
        except AppError as exc:
            return await self._fail(record, exc)
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
        with tempfile.TemporaryDirectory(prefix=f"video-gen-{job.job_id}-") as tmp:
            try:
                video = await self.production.generate(plugin, job, image, record, Path(tmp))
            except Stopped:
                return await self._stopped(plugin, record)
            except Transient:
                raise  # the provider's request id could not be recorded: retried, resumed
            except Exception as exc:  # whatever the model raises is a verdict on this generation
                return await self._fail(record, _generation_error(exc, plugin))
            await check_lease()
            if self.production.stops.requested(job.job_id):
                return await self._stopped(plugin, record)
            try:
                await self.production.store(key, job, video)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the network or the disk: retried, not a verdict
                return await self._fail(record, GenerationFailed(f"storing the video failed: {exc}"))
        self.fault("after_upload", job.job_id)
        return await self._succeed(record, key, video.duration_seconds, int((time.monotonic() - started) * 1000))

    async def _succeed(self, record: GenerationRecord, key: str, length: float, ms: int) -> JobReply:
        self.production.forget(record.id)
        done = await transitions.succeed(record, output_key=key, duration_seconds=length, generation_ms=ms)
        if done is None:  # another delivery ended it first: answer what it recorded
            return await reply_from_record(await self._current(record.id))
        return success_reply(done.record, done.balance)

    async def _fail(self, record: GenerationRecord, exc: AppError) -> JobReply:
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

    async def _source(self, job: JobMessage, plugin: ModelPlugin) -> SourceImage:
        """The checked source image, read once; also a presigned URL when the model wants one."""
        checked = await load_source_image(
            self.storage,
            job.source_key,
            user_id=job.user_id,
            prefix_template=self.settings.source_key_prefix,
            max_bytes=self.settings.max_source_bytes,
            max_pixels=self.settings.max_source_pixels,
        )
        url = None
        if getattr(plugin, "wants_image_url", False):
            url = await self.storage.download_url(job.source_key, expires_in=self.settings.download_url_seconds)
        return SourceImage(key=checked.key, data=checked.data, content_type=checked.content_type, url=url)

    @staticmethod
    async def _current(generation_id: str) -> GenerationRecord:
        record = await repository.get(generation_id)
        assert record is not None
        return record

    @staticmethod
    def _given_up(delivery: int) -> GenerationFailed:
        return GenerationFailed(f"the job was interrupted {delivery - 1} times and was not retried again")


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
