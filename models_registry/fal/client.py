"""The shared fal.ai client code of the Veo models: fal-client's async queue API, once.

One ``fal_client.AsyncClient`` per process (made in ``open``, closed in ``close``): the module-level
fal-client functions bind to the first event loop they meet. A generation submits to the model's
``endpoint``, persists fal's request id *before* waiting (so a redelivered job resumes it instead
of paying twice), polls from every ``FAL_POLL_SECONDS`` reporting queue position and provider logs
(``polling.py``), fetches the result, streams the video to the job's workdir (``download.py``) and
finishes it to the sold length (``durations.py``). fal's input: ``arguments.py``. How fal's failures
are classified and retried: ``errors.py``; every call to fal is bounded (``FAL_REQUEST_SECONDS``,
``FAL_RETRY_SECONDS``), fal-client's own retries included.

A model on fal is a subclass naming its ``endpoint``, ``durations`` and ``plans``, its ``Options``
struct (sent to fal as they are, ``None`` fields left out) and its cost rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import fal_client
import httpx
from fal_client import AsyncRequestHandle

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin, Progress
from models_registry.cpu import run_cpu
from models_registry.errors import GenerationFailed
from models_registry.fal.arguments import fal_arguments
from models_registry.fal.download import download_video
from models_registry.fal.durations import DurationPlan, Plans, finish_video, plan_for
from models_registry.fal.errors import with_retries
from models_registry.fal.polling import POLL_BACKOFF, POLL_JITTER, poll_delays, resume_delay, wait_for_result
from models_registry.fal.queue import cancel, video_url
from models_registry.fal.settings import FalSettings, fal_settings

T = TypeVar("T")

# The polling constants lived here before polling.py: importable from here still.
__all__ = ["CREDITS_PER_USD", "POLL_BACKOFF", "POLL_JITTER", "FalVideoModel", "poll_delays"]

# Credits are sold at 500 to the US dollar fal charges (one credit = $0.002), rounded up per clip.
CREDITS_PER_USD = 500


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
            await asyncio.sleep(resume_delay(self.settings.poll_seconds, self.settings.poll_max_seconds))
            return await fal.get_handle(self.endpoint, job.provider_request_id)
        arguments = self.arguments(job, plan)
        handle = await self._retry(lambda: fal.submit(self.endpoint, arguments), "submitting to fal.ai")
        await job.save_provider_request_id(handle.request_id)
        return handle

    def arguments(self, job: GenerationJob, plan: DurationPlan) -> dict[str, Any]:
        """fal's input for this job (``arguments.py``): a model with other inputs overrides this."""
        return fal_arguments(
            job,
            plan,
            self.Options,
            model=self.name,
            max_image_bytes=self.max_image_bytes,
            send_image_url=self.settings.send_image_url,
        )

    async def _wait(self, handle: AsyncRequestHandle, job: GenerationJob) -> Any:
        """Poll until the request completes, reporting progress, and fetch its result (``polling.py``)."""
        return await wait_for_result(handle, job, self.settings, self._retry)

    async def _download(self, url: str, dest: Path) -> None:
        """Stream the video to ``dest`` (``download.py``) with the retries of this model."""
        assert self._http is not None
        await download_video(
            self._http,
            url,
            dest,
            max_bytes=self.max_video_bytes,
            attempts=self.retry_attempts,
            base_delay=self.retry_base_delay,
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
