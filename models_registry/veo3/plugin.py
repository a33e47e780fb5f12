"""Google Veo3 image-to-video on fal.ai, through fal-client's async queue API.

One ``fal_client.AsyncClient`` per process (made in ``open``, closed in ``close``): the module-level
fal-client functions bind to the first event loop they meet. A generation submits to
``settings.fal_endpoint``, persists fal's request id *before* waiting (so a redelivered job resumes
it instead of paying twice), polls every ``settings.fal_poll_seconds`` reporting queue position and
provider logs, fetches the result, streams the video to the job's workdir and finishes it to the
sold length (``durations.py``). How fal's failures are classified and retried: ``errors.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import fal_client
import httpx
from fal_client import AsyncRequestHandle, Completed, InProgress, Queued, Status

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin, Progress
from models_registry.errors import GenerationFailed, ProviderRejected
from models_registry.veo3.durations import DurationPlan, finish_video, plan_for
from models_registry.veo3.errors import with_retries

T = TypeVar("T")
log = logging.getLogger(__name__)


class Veo3Model(ModelPlugin):
    """Veo3 via fal.ai: 5s, 8s (default) and 10s, 750 credits each.

    fal offers 4s/6s/8s, so 5s is fal's 6s trimmed to 5.0 s, 8s is fal's 8s as is, and 10s is
    fal's 8s extended to 10.0 s by replaying its last 2 s over 4 s, easing to a stop
    (``durations.py`` has the table). The duration returned is probed from the finished file.

    Sent to fal: ``prompt``, ``image_url`` (a base64 data URI of the source, or its presigned URL
    when ``FAL_SEND_IMAGE_URL`` is on), fal's ``duration`` and ``defaults``. ``generate_audio`` is
    off by default: fal charges twice as much per second with audio and the API sells silent
    clips. ``job.options`` may override the fields in ``option_fields``; others are ignored.
    """

    name = "veo3"
    durations = ("5s", "8s", "10s")
    default_duration = "8s"
    timeout_seconds = 600.0
    description = "Google Veo3 image-to-video on fal.ai"

    # The worker cancels generate() at timeout_seconds; stopping this much earlier leaves time to
    # cancel the fal request and to fail with a message that names it.
    cleanup_seconds: ClassVar[float] = 10.0
    # Retries of 429/5xx/network failures per fal call: attempts in all, first delay, doubling.
    retry_attempts: ClassVar[int] = 3
    retry_base_delay: ClassVar[float] = 1.0
    max_image_bytes: ClassVar[int] = 8 * 1024 * 1024  # fal's limit for Veo3's input image
    max_video_bytes: ClassVar[int] = 512 * 1024 * 1024
    defaults: ClassVar[dict[str, Any]] = {
        "aspect_ratio": "auto",
        "resolution": "720p",
        "generate_audio": False,
    }
    option_fields: ClassVar[frozenset[str]] = frozenset(
        {"aspect_ratio", "resolution", "generate_audio", "negative_prompt", "seed", "auto_fix"}
    )

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport  # for the video download only; tests route it to a fake
        self._fal: fal_client.AsyncClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._endpoint = "fal-ai/veo3/image-to-video"
        self._poll_seconds = 3.0
        self._send_image_url = False

    def cost(self, duration: str) -> int:
        """Flat 750 credits, as the spec's cost table says, whatever the duration."""
        return 750

    async def open(self, settings: Any) -> None:
        """Create this process's fal client (only with a FAL_KEY) and the download client."""
        self._endpoint = settings.fal_endpoint
        self._poll_seconds = settings.fal_poll_seconds
        self._send_image_url = settings.fal_send_image_url
        # The key is passed explicitly so fal-client never falls back to ~/.fal or other sources.
        self._fal = fal_client.AsyncClient(key=settings.fal_key) if settings.fal_key else None
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
            raise RuntimeError("Veo3Model.open() must be called before generate()")
        if self._fal is None:
            raise GenerationFailed("FAL_KEY is not set")
        plan = plan_for(job.duration)
        raw, out = job.workdir / "veo3-fal.mp4", job.workdir / "veo3.mp4"
        handle: AsyncRequestHandle | None = None
        budget = self.timeout_seconds - min(self.cleanup_seconds, self.timeout_seconds / 2)
        deadline = asyncio.timeout(budget)
        try:
            async with deadline:
                handle = await self._start(self._fal, job, plan)
                result = await self._wait(handle, job)
                await self._download(_video_url(result), raw)
                await job.report_progress(Progress(f"Finishing the {plan.requested} video", fraction=0.95))
                info = await asyncio.to_thread(finish_video, plan, raw, out)
        except TimeoutError:
            if not deadline.expired():
                raise
            await _cancel(handle)
            which = f" (fal request {handle.request_id})" if handle else ""
            raise GenerationFailed(f"Veo3 did not finish within {budget:g} s{which}") from None
        return GeneratedVideo(path=out, duration_seconds=info.duration_seconds)

    async def cancel(self, request_id: str) -> None:
        """Cancel the fal request of a cancelled job (fal's ``PUT .../requests/{id}/cancel``)."""
        if self._fal is not None:
            await self._fal.cancel(self._endpoint, request_id)

    async def _start(self, fal: fal_client.AsyncClient, job: GenerationJob, plan: DurationPlan) -> AsyncRequestHandle:
        """Resume the job's fal request if it has one, else submit and persist the new id."""
        if job.provider_request_id:
            # An earlier delivery already submitted (and paid for) this request: never resubmit.
            await job.report_progress(Progress(f"Resuming fal request {job.provider_request_id}"))
            return await fal.get_handle(self._endpoint, job.provider_request_id)
        arguments = self.arguments(job, plan)
        handle = await self._retry(lambda: fal.submit(self._endpoint, arguments), "submitting to fal.ai")
        await job.save_provider_request_id(handle.request_id)
        return handle

    def arguments(self, job: GenerationJob, plan: DurationPlan) -> dict[str, Any]:
        """fal's input for this job; refuses an image over fal's size limit before anything is sent."""
        image = job.image
        if len(image.data) > self.max_image_bytes:
            raise ProviderRejected(
                f"The source image is {len(image.data) / 2**20:.1f} MB; Veo3 accepts at most "
                f"{self.max_image_bytes / 2**20:g} MB"
            )
        if self._send_image_url and image.url:
            image_url = image.url
        else:
            image_url = fal_client.encode(image.data, image.content_type)
        options = {k: v for k, v in job.options.items() if k in self.option_fields}
        return {**self.defaults, **options, "prompt": job.prompt, "duration": plan.fal_duration, "image_url": image_url}

    async def _wait(self, handle: AsyncRequestHandle, job: GenerationJob) -> Any:
        """Poll until COMPLETED, reporting progress; a completed request with an error fails."""
        seen_logs, last = 0, None
        while True:
            status = await self._retry(lambda: handle.status(with_logs=True), "polling fal.ai")
            if isinstance(status, Completed):
                break
            progress, seen_logs = _progress(status, seen_logs)
            if progress is not None and progress != last:
                await job.report_progress(progress)
                last = progress
            await asyncio.sleep(self._poll_seconds)
        if status.error:
            kind = f" ({status.error_type})" if status.error_type else ""
            raise GenerationFailed(f"fal request {handle.request_id} failed{kind}: {status.error}")
        await job.report_progress(Progress("Downloading the video", fraction=0.9))
        return await self._retry(lambda: handle.get(interval=self._poll_seconds), "fetching the result")

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

        await self._retry(once, "downloading the video")

    async def _retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await with_retries(operation, what=what, attempts=self.retry_attempts, base_delay=self.retry_base_delay)


def _progress(status: Status, seen_logs: int) -> tuple[Progress | None, int]:
    """The report for a non-final status (queue position, newest log line) and logs seen so far."""
    if isinstance(status, Queued):
        return Progress(
            f"Waiting in fal.ai's queue (position {status.position})", queue_position=status.position
        ), seen_logs
    if isinstance(status, InProgress):
        logs = status.logs or []
        if len(logs) > seen_logs:
            return Progress(str(logs[-1].get("message", "")).strip() or "Generating on fal.ai"), len(logs)
        return (Progress("Generating on fal.ai") if not seen_logs else None), seen_logs
    return None, seen_logs


def _video_url(result: Any) -> str:
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise GenerationFailed(f"fal.ai's result has no video URL: {json.dumps(result)[:200]}")
    return url


async def _cancel(handle: AsyncRequestHandle | None) -> None:
    """Best effort: stop fal working (and billing) on a request nobody waits for any more."""
    if handle is None:
        return
    try:
        async with asyncio.timeout(5):
            await handle.cancel()
    except Exception as exc:  # the job fails with the timeout either way
        log.warning("could not cancel fal request %s: %s", handle.request_id, exc)
