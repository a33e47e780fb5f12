"""``example-slideshow``: a video-gen model plugin that renders locally, for showing the contract."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin, Progress, parse_duration
from models_registry.video import probe_video
from video_gen_example.render import render_slideshow


class SlideshowModel(ModelPlugin):
    """A cross-fade from the source image to a mirrored, colour-shifted copy of it.

    Offers 4s (the default, 100 credits) and 6s (150 credits): the cost rule is 25 credits a
    second. Rendering is small (320x180 at 12 fps) and local, so no ``open``/``close`` and no
    provider request id are needed; a provider-backed plugin would use both.
    """

    name: ClassVar[str] = "example-slideshow"
    durations: ClassVar[tuple[str, ...]] = ("4s", "6s")
    default_duration: ClassVar[str] = "4s"
    timeout_seconds: ClassVar[float] = 60.0
    description: ClassVar[str] = "Example third-party plugin: a cross-fade to a mirrored, colour-shifted copy."

    width, height, fps = 320, 180, 12
    credits_per_second: ClassVar[int] = 25

    def cost(self, duration: str, options: object) -> int:
        """Credits for one clip: 25 a second (4s -> 100, 6s -> 150)."""
        return self.credits_per_second * parse_duration(duration)

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        """Render off the event loop (encoding is CPU-bound) and return the length probed from the file."""
        out_path = job.workdir / f"{job.job_id}.mp4"
        await job.report_progress(Progress("rendering slideshow", fraction=0.0))
        await asyncio.to_thread(
            render_slideshow,
            job.image.data,
            out_path,
            seconds=parse_duration(job.duration),
            width=self.width,
            height=self.height,
            fps=self.fps,
        )
        await job.report_progress(Progress("checking the video", fraction=0.9))
        info = await asyncio.to_thread(probe_video, out_path)
        await job.report_progress(Progress("done", fraction=1.0))
        return GeneratedVideo(out_path, info.duration_seconds)
