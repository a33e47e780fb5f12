"""The ``local`` model: an offline pan-and-zoom render, so the service works without a provider."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import msgspec

from models_registry.base import (
    GeneratedVideo,
    GenerationJob,
    ModelPlugin,
    Progress,
    parse_duration,
)
from models_registry.local.render import RenderStopped, render_pan_zoom
from models_registry.settings import read_settings
from models_registry.video import probe_video


class LocalSettings(msgspec.Struct, kw_only=True, frozen=True):
    """``LOCAL_MODEL_WIDTH``, ``LOCAL_MODEL_HEIGHT``, ``LOCAL_MODEL_FPS``: the rendered clip's size."""

    width: int = 1024
    height: int = 576
    fps: int = 24


class LocalPanZoomModel(ModelPlugin):
    """Ken Burns motion over the source image, rendered on this machine with PyAV."""

    name: ClassVar[str] = "local"
    durations: ClassVar[tuple[str, ...]] = ("5s", "8s", "10s")
    default_duration: ClassVar[str] = "8s"
    timeout_seconds: ClassVar[float] = 120.0
    description: ClassVar[str] = (
        "Offline pan-and-zoom (Ken Burns) animation of the source image; no provider, no key. "
        "The prompt only picks the camera move."
    )

    default_rank: ClassVar[int] = 10  # the default without a provider key

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings if settings is not None else read_settings(LocalSettings, "LOCAL_MODEL_")
        self.width, self.height, self.fps = self.settings.width, self.settings.height, self.settings.fps

    def cost(self, duration: str, options: Any) -> int:
        """Priced like Veo3 in the spec's table, so the demo shows the spec's numbers."""
        return 750

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        """Render the clip in a worker thread, reporting the share of frames done, and report the
        length probed from the file. Cancelled, the thread stops at its next frame."""
        seconds = parse_duration(job.duration)
        out_path = job.workdir / f"{job.job_id}.mp4"
        await job.report_progress(Progress("rendering pan-and-zoom", fraction=0.0))
        loop, stop = asyncio.get_running_loop(), threading.Event()

        def on_frame(done: int, count: int) -> None:
            if stop.is_set():
                raise RenderStopped(f"render of {job.job_id} stopped at frame {done} of {count}")
            if done % self.fps == 0 and done < count:  # about once a second of video
                report = Progress(f"rendering frame {done} of {count}", fraction=round(0.9 * done / count, 3))
                asyncio.run_coroutine_threadsafe(job.report_progress(report), loop)

        try:
            await asyncio.to_thread(
                render_pan_zoom,
                job.image.data,
                out_path,
                seconds=seconds,
                width=self.width,
                height=self.height,
                fps=self.fps,
                seed=job.prompt,
                on_frame=on_frame,
            )
        finally:
            stop.set()  # cancelled (the job, its timeout, a shutdown): the thread stops too
        await job.report_progress(Progress("checking the video", fraction=0.9))
        info = await asyncio.to_thread(probe_video, out_path)
        await job.report_progress(Progress("done", fraction=1.0))
        return GeneratedVideo(out_path, info.duration_seconds)
