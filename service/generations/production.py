"""Making the video: the model run with its callbacks, and the upload.

The model gets the job's prompt, duration, options and checked source image, a private temporary
directory, and two callbacks: progress (saved at most once a second, best effort) and the
provider's request id (saved before the model waits on it, retried through a short outage: a
redelivered job resumes that request instead of paying for a second one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import structlog

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin, SourceImage
from models_registry.base import Progress as ModelProgress
from models_registry.errors import ModelError, ProviderRejected
from models_registry.options import parse as parse_options
from models_registry.registry import options_type
from service.core import metrics, tracing
from service.core.errors import Transient
from service.generations import repository
from service.generations.records import GenerationRecord, Progress
from service.generations.schemas import JobProgress
from service.generations.stops import Stopped, Stops
from service.generations.workdirs import Workdirs
from service.jobs.messages import JobEvent, JobMessage
from service.storage.base import Storage

log = structlog.get_logger(__name__)

DURATION_METADATA = "duration-seconds"  # the stored video's probed length, read back on resume
Fault = Callable[[str, str], None]
Publish = Callable[[JobEvent], Awaitable[None]]


class Production:
    """Runs models and stores their videos for one worker process."""

    def __init__(self, storage: Storage, fault: Fault, publish: Publish | None = None) -> None:
        self.storage, self.fault, self.publish = storage, fault, publish
        self.stops = Stops()
        self.workdirs = Workdirs()
        # Provider request ids this process saw, in case the database missed one: a retry after an
        # outage then resumes the request instead of paying for a second one.
        self._request_ids: dict[str, str] = {}

    async def generate(
        self, plugin: ModelPlugin, job: JobMessage, image: SourceImage, record: GenerationRecord, workdir: Path
    ) -> GeneratedVideo:
        """Run the model, within its timeout (``TimeoutError`` past it), counted in the metrics;
        ``Stopped`` when the job is cancelled meanwhile."""
        task = self._job(plugin, job, image, record, workdir)
        model = job.model
        metrics.PROVIDER_REQUESTS.labels(model).inc()
        started = time.monotonic()
        with (
            tracing.span("model.generate", model=model),
            metrics.JOBS_RUNNING.labels(model).track_inprogress(),
        ):
            try:
                async with asyncio.timeout(plugin.timeout_seconds):
                    return await self.stops.run(job.job_id, plugin.generate(task))
            except Stopped:
                raise
            except Exception as exc:
                metrics.PROVIDER_ERRORS.labels(model, _error_type(exc)).inc()
                raise
            finally:
                metrics.GENERATION_SECONDS.labels(model).observe(time.monotonic() - started)

    async def cancel_with_provider(self, plugin: ModelPlugin, record: GenerationRecord) -> None:
        """Best effort: ask the provider to stop the job's request, if it has one and the plugin
        can (the optional ``cancel`` hook); the job is cancelled and refunded either way."""
        request_id = self._request_ids.get(record.id) or record.provider_request_id
        cancel = getattr(plugin, "cancel", None)
        if request_id is None or cancel is None:
            return
        try:
            async with asyncio.timeout(10):
                await cancel(request_id)
            log.info("generation.provider_cancelled", job_id=record.id, request_id=request_id)
        except Exception as exc:
            log.warning("generation.provider_cancel_failed", job_id=record.id, error=str(exc) or type(exc).__name__)

    async def store(self, key: str, job: JobMessage, video: GeneratedVideo, workdir: Path | None = None) -> None:
        """Store the video under ``key``. A file the model left directly in the job's ``workdir``
        is ours to give away (the directory is emptied for the next job): the storage may move it
        instead of copying it."""
        metadata = {"generation-id": job.job_id, "model": job.model, DURATION_METADATA: repr(video.duration_seconds)}
        consume = workdir is not None and Path(video.path).parent == workdir
        with tracing.span("storage.upload", **{"storage.key": key}):
            await self.storage.put_file(
                key, video.path, content_type=video.content_type, metadata=metadata, consume=consume
            )

    async def stored_length(self, key: str) -> float | None:
        """The length of a video an earlier delivery stored under ``key``, if it did."""
        head = await self.storage.head(key)
        try:
            return float(head.metadata[DURATION_METADATA]) if head is not None else None
        except (KeyError, ValueError):
            return None  # not ours, or written before lengths were recorded: generate again

    async def announce(self, job_id: str, *, progress: JobProgress | None = None) -> None:
        """Tell the API processes following the job (Server-Sent Events) that it runs, or progressed.
        Best effort: a follower also re-reads the job now and then."""
        if self.publish is None:
            return
        shown = None if progress is None else msgspec.to_builtins(progress)
        try:
            await self.publish(JobEvent(job_id=job_id, status="running", progress=shown))
        except Exception as exc:
            log.warning("generation.event_not_published", job_id=job_id, error=str(exc) or type(exc).__name__)

    def forget(self, job_id: str) -> None:
        self._request_ids.pop(job_id, None)

    def _job(
        self, plugin: ModelPlugin, job: JobMessage, image: SourceImage, record: GenerationRecord, workdir: Path
    ) -> GenerationJob:
        last = [0.0]

        async def progress(p: ModelProgress) -> None:
            self.fault("during_generation", job.job_id)
            if time.monotonic() - last[0] < 1.0 and p.fraction != 1.0:
                return
            last[0] = time.monotonic()
            try:  # a progress report never fails a generation
                await repository.save_progress(
                    job.job_id, Progress(message=p.message, fraction=p.fraction, queue_position=p.queue_position)
                )
                shown = JobProgress(message=p.message, fraction=p.fraction, queue_position=p.queue_position)
                await self.announce(job.job_id, progress=shown)
            except Exception as exc:
                log.warning("generation.progress_not_saved", job_id=job.job_id, error=str(exc) or type(exc).__name__)

        async def save_request_id(request_id: str) -> None:
            self._request_ids[job.job_id] = request_id
            delay = 0.2
            for _ in range(12):  # about a minute: the provider is already working (and billing)
                try:
                    await repository.save_provider_request(job.job_id, request_id)
                    break
                except Exception as exc:
                    log.warning(
                        "generation.request_id_not_saved", job_id=job.job_id, error=str(exc) or type(exc).__name__
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 8.0)
            else:
                raise Transient(f"could not record provider request {request_id}")
            self.fault("during_generation", job.job_id)

        return GenerationJob(
            job_id=job.job_id,
            prompt=job.prompt,
            duration=job.duration,
            image=image,
            workdir=workdir,
            options=parse_options(options_type(plugin), job.options),
            provider_request_id=record.provider_request_id or self._request_ids.get(job.job_id),
            report_progress=progress,
            save_provider_request_id=save_request_id,
        )


def _error_type(exc: Exception) -> str:
    """The provider error's class, a bounded label."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, Transient):
        return "transient"
    if isinstance(exc, ProviderRejected):
        return "rejected"
    if isinstance(exc, ModelError):
        return "failed"
    return "unexpected"
