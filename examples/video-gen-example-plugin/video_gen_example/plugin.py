"""``example-slideshow``: a video-gen model plugin that renders locally, for showing the contract.

Written only against ``models_registry``'s public names: the contract, its errors and its settings
reader (``from models_registry import ...``) and the PyAV helpers (``models_registry.video``).
Nothing from the service.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

import msgspec

from models_registry import GeneratedVideo, GenerationJob, ModelPlugin, Progress, parse_duration, read_settings
from models_registry.video import probe_video
from video_gen_example.render import render_slideshow


class SlideshowOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """What a request may set in ``options``; anything else is a 400 before any charge."""

    fps: Literal[12, 24] = 12
    """Frames a second: 24 is smoother and costs more (the price depends on it)."""
    mirror: bool = True
    """Cross-fade into a mirrored copy (true) or into a colour-shifted copy only (false)."""


class SlideshowSettings(msgspec.Struct, kw_only=True, frozen=True):
    """``EXAMPLE_SLIDESHOW_WIDTH`` / ``EXAMPLE_SLIDESHOW_HEIGHT``: the plugin's own settings."""

    width: int = 320
    height: int = 180


class SlideshowModel(ModelPlugin):
    """A cross-fade from the source image to a mirrored, colour-shifted copy of it.

    Offers 4s (the default) and 6s. The cost rule is 25 credits a second at 12 fps (4s -> 100,
    6s -> 150) and 40 a second at 24 fps (160, 240). Rendering is small and local, so no
    ``open``/``close`` and no provider request id are needed; a provider-backed plugin would use both.
    """

    name: ClassVar[str] = "example-slideshow"
    durations: ClassVar[tuple[str, ...]] = ("4s", "6s")
    default_duration: ClassVar[str] = "4s"
    timeout_seconds: ClassVar[float] = 60.0
    description: ClassVar[str] = "Example third-party plugin: a cross-fade to a mirrored, colour-shifted copy."
    Options: ClassVar[type] = SlideshowOptions
    price_options: ClassVar[tuple[str, ...]] = ("fps",)
    credits_per_second: ClassVar[dict[int, int]] = {12: 25, 24: 40}

    def __init__(self) -> None:
        self.settings = read_settings(SlideshowSettings, "EXAMPLE_SLIDESHOW_")

    def cost(self, duration: str, options: SlideshowOptions) -> int:
        """Credits for one clip: 25 a second at 12 fps, 40 at 24 fps."""
        return self.credits_per_second[options.fps] * parse_duration(duration)

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        """Render off the event loop (encoding is CPU-bound) and return the length probed from the file."""
        options: SlideshowOptions = job.options
        out_path = job.workdir / f"{job.job_id}.mp4"
        await job.report_progress(Progress("rendering slideshow", fraction=0.0))
        await asyncio.to_thread(
            render_slideshow,
            job.image.data,
            out_path,
            seconds=parse_duration(job.duration),
            width=self.settings.width,
            height=self.settings.height,
            fps=options.fps,
            mirror=options.mirror,
        )
        await job.report_progress(Progress("checking the video", fraction=0.9))
        info = await asyncio.to_thread(probe_video, out_path)
        await job.report_progress(Progress("done", fraction=1.0))
        return GeneratedVideo(out_path, info.duration_seconds)
