"""The shared fal.ai client code of the Veo models: fal-client's async queue API, once.

One ``fal_client.AsyncClient`` per process (made in ``open``, closed in ``close``): the module-level
fal-client functions bind to the first event loop they meet. A generation submits to the model's
``endpoint``, persists fal's request id *before* waiting (so a redelivered job resumes it instead
of paying twice), polls every ``FAL_POLL_SECONDS`` reporting queue position and provider logs,
fetches the result, streams the video to the job's workdir and finishes it to the sold length
(``durations.py``). How fal's failures are classified and retried: ``errors.py``; every call to
fal is bounded (``FAL_REQUEST_SECONDS``, ``FAL_RETRY_SECONDS``), fal-client's own retries included.

A model on fal is a subclass naming its ``endpoint``, ``durations`` and ``plans``, its ``Options``
struct (sent to fal as they are, ``None`` fields left out) and its cost rule.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import fal_client
import httpx
import msgspec
from fal_client import AsyncRequestHandle, Completed

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin, Progress
from models_registry.cpu import run_cpu
from models_registry.errors import GenerationFailed, ProviderRejected
from models_registry.fal.durations import DurationPlan, Plans, finish_video, plan_for
from models_registry.fal.errors import with_retries
from models_registry.fal.queue import cancel, progress_of, video_url
from models_registry.fal.settings import FalSettings, fal_settings

T = TypeVar("T")

# Credits are sold at 500 to the US dollar fal charges (one credit = $0.002), rounded up per clip.
CREDITS_PER_USD = 500


POLL_BACKOFF = 1.5  # each status poll of a running request waits this much longer than the last ...
POLL_JITTER = 0.2  # ... give or take this fraction


def poll_delays(first: float, cap: float) -> Iterator[float]:
    """The waits between status polls: ``first``, then 1.5 times longer each time up to ``cap``,
    each give or take 20 %. A long generation is polled less often, and jobs submitted together do
    not poll together (1,000 in flight cost about 130 polls a second: the README's benchmarks)."""
    interval = first
    while True:
        yield interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        interval = min(interval * POLL_BACKOFF, max(cap, first))


class FalVideoModel(ModelPlugin):
    """Base class of the image-to-video models on fal.ai (not a plugin itself: no ``name``)."""

    endpoint: ClassVar[str]
    plans: ClassVar[Plans]
    provider_name: ClassVar[str] = "Veo"  # as fal's refusals are reported: "Veo3 rejected the request: ..."
    timeout_seconds = 600.0
    # A generation mostly waits on fal: one worker process polls hundreds (MODEL_CONCURRENCY overrides).
    max_concurrency = 500
    # The worker cancels generate() at timeout_seconds; stopping this much earlier leaves time to
    # cancel the fal request and to fail with a message that names it.
    cleanup_seconds: ClassVar[float] = 10.0
    # Retries of 429/5xx/network failures per fal call: attempts in all, first delay, doubling.
    retry_attempts: ClassVar[int] = 3
    retry_base_delay: ClassVar[float] = 1.0
    max_image_bytes: ClassVar[int] = 8 * 1024 * 1024  # fal's limit for Veo's input image
    max_video_bytes: ClassVar[int] = 512 * 1024 * 1024

    def __init__(
        self, *, settings: FalSettings | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings if settings is not None else fal_settings()
        self._transport = transport  # for the video download only; tests route it to a fake
        self._fal: fal_client.AsyncClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._calls: asyncio.Semaphore | None = None  # fal calls in flight (FAL_MAX_CALLS)

    @property
    def wants_image_url(self) -> bool:  # type: ignore[override]
        return self.settings.send_image_url

    def readiness(self) -> str | None:
        """Unavailable without a ``FAL_KEY``: refused before any charge rather than failing after it."""
        return None if self.settings.key else "FAL_KEY is not set"

    def usd_per_second(self, options: Any) -> float:
        """fal's price for one second of this model's video with ``options``."""
        raise NotImplementedError

    def cost(self, duration: str, options: Any) -> int:
        """fal's price of the clip fal makes for ``duration`` (plans), in credits, rounded up."""
        seconds = self.plans[duration].fal_seconds
        return -(-round(seconds * self.usd_per_second(options) * CREDITS_PER_USD * 1000) // 1000)

    async def open(self, settings: Any = None) -> None:
        """Create this process's fal client (only with a FAL_KEY) and the download client."""
        # The key is passed explicitly so fal-client never falls back to ~/.fal or other sources.
        key = self.settings.key
        self._fal = fal_client.AsyncClient(key=key, default_timeout=self.settings.request_seconds) if key else None
        # A separate client: fal's carries the FAL_KEY header, which must not go to the file host.
        self._http = httpx.AsyncClient(
            transport=self._transport, timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True
        )

    async def close(self) -> None:
        """Close both HTTP clients."""
        if self._http is not None:
            await self._http.aclose()
        # fal-client 1.0.3's AsyncClient has no close(); its httpx client is a lazily cached attribute.
        if self._fal is not None and "_client" in vars(self._fal):
            await (await self._fal._client).aclose()
        self._fal = self._http = None

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        """Generate (or resume) one video on fal and return it at the sold length, probed."""
        if self._http is None:
            raise RuntimeError(f"{type(self).__name__}.open() must be called before generate()")
        if self._fal is None:
            raise GenerationFailed("FAL_KEY is not set")
        plan = plan_for(self.plans, job.duration, self.name)
        raw, out = job.workdir / "fal-raw.mp4", job.workdir / "fal-finished.mp4"
        handle: AsyncRequestHandle | None = None
        budget = self.timeout_seconds - min(self.cleanup_seconds, self.timeout_seconds / 2)
        deadline = asyncio.timeout(budget)
        try:
            async with deadline:
                handle = await self._start(self._fal, job, plan)
                result = await self._wait(handle, job)
                await self._download(video_url(result), raw)
                await job.report_progress(Progress(f"Finishing the {plan.requested} video", fraction=0.95))
                info = await run_cpu(finish_video, plan, raw, out)
        except TimeoutError:
            if not deadline.expired():
                raise
            await cancel(handle)
            which = f" (fal request {handle.request_id})" if handle else ""
            raise GenerationFailed(f"{self.name} did not finish within {budget:g} s{which}") from None
        return GeneratedVideo(path=out, duration_seconds=info.duration_seconds)

    async def cancel(self, request_id: str) -> None:
        """Cancel the fal request of a cancelled job (fal's ``PUT .../requests/{id}/cancel``)."""
        if self._fal is not None:
            await self._fal.cancel(self.endpoint, request_id)

    async def _start(self, fal: fal_client.AsyncClient, job: GenerationJob, plan: DurationPlan) -> AsyncRequestHandle:
        """Resume the job's fal request if it has one, else submit and persist the new id."""
        if job.provider_request_id:
            # An earlier delivery already submitted (and paid for) this request: never resubmit.
            await job.report_progress(Progress(f"Resuming fal request {job.provider_request_id}"))
            # A worker that died leaves hundreds of requests, all resumed at once by another: spread
            # their first polls over the longest poll interval instead of sending them together.
            first, cap = self.settings.poll_seconds, self.settings.poll_max_seconds
            await asyncio.sleep(random.uniform(0, min(max(cap, first), 4 * first)))
            return await fal.get_handle(self.endpoint, job.provider_request_id)
        arguments = self.arguments(job, plan)
        handle = await self._retry(lambda: fal.submit(self.endpoint, arguments), "submitting to fal.ai")
        await job.save_provider_request_id(handle.request_id)
        return handle

    def arguments(self, job: GenerationJob, plan: DurationPlan) -> dict[str, Any]:
        """fal's input for this job; refuses an image over fal's size limit before anything is sent."""
        image = job.image
        if len(image.data) > self.max_image_bytes:
            raise ProviderRejected(
                f"The source image is {len(image.data) / 2**20:.1f} MB; {self.name} accepts at most "
                f"{self.max_image_bytes / 2**20:g} MB"
            )
        if self.settings.send_image_url and image.url:
            image_url = image.url
        else:
            image_url = fal_client.encode(image.data, image.content_type)
        options = {k: v for k, v in msgspec.structs.asdict(self._options(job)).items() if v is not None}
        return {**options, "prompt": job.prompt, "duration": plan.fal_duration, "image_url": image_url}

    def _options(self, job: GenerationJob) -> Any:
        """The job's ``Options`` (a job built by hand may carry a dict or none: defaults apply)."""
        if isinstance(job.options, self.Options):
            return job.options
        raw = job.options if isinstance(job.options, dict) else msgspec.structs.asdict(job.options)
        return msgspec.convert(raw, self.Options)

    async def _wait(self, handle: AsyncRequestHandle, job: GenerationJob) -> Any:
        """Poll until COMPLETED, reporting progress; a completed request with an error fails."""
        seen_logs, last = 0, None
        delays = poll_delays(self.settings.poll_seconds, self.settings.poll_max_seconds)
        while True:
            status = await self._retry(lambda: handle.status(with_logs=True), "polling fal.ai")
            if isinstance(status, Completed):
                break
            progress, seen_logs = progress_of(status, seen_logs)
            if progress is not None and progress != last:
                await job.report_progress(progress)
                last = progress
            await asyncio.sleep(next(delays))
        if status.error:
            kind = f" ({status.error_type})" if status.error_type else ""
            raise GenerationFailed(f"fal request {handle.request_id} failed{kind}: {status.error}")
        await job.report_progress(Progress("Downloading the video", fraction=0.9))
        return await self._retry(lambda: handle.get(interval=self.settings.poll_seconds), "fetching the result")

    async def _download(self, url: str, dest: Path) -> None:
        """Stream the video to ``dest`` chunk by chunk: never the whole file in memory."""
        assert self._http is not None
        http = self._http

        async def once() -> None:
            size = 0
            async with http.stream("GET", url) as response:
                response.raise_for_status()
                with dest.open("wb") as f:
                    async for chunk in response.aiter_bytes(64 * 1024):
                        size += len(chunk)
                        if size > self.max_video_bytes:
                            raise GenerationFailed(f"fal's video is larger than {self.max_video_bytes} bytes")
                        f.write(chunk)

        # The video may be large: bounded by the download client's timeouts, not the call budget.
        await with_retries(
            once, what="downloading the video", attempts=self.retry_attempts, base_delay=self.retry_base_delay
        )

    async def _retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """A call to fal's queue API: bounded per attempt and in all (``FalSettings``). At most
        ``FAL_MAX_CALLS`` are in flight per model and process: a burst (a worker resuming a dead
        one's hundreds of jobs, a thousand submits at once) queues here, outside the time limits,
        instead of timing out in the HTTP client's connection pool."""
        if self._calls is None:
            self._calls = asyncio.Semaphore(self.settings.max_calls)
        async with self._calls:
            return await self._retry_now(operation, what)

    async def _retry_now(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await with_retries(
            operation,
            what=what,
            attempts=self.retry_attempts,
            base_delay=self.retry_base_delay,
            attempt_seconds=self.settings.request_seconds,
            budget_seconds=self.settings.retry_seconds,
            provider=self.provider_name,
        )
