"""The ``local`` model: an offline pan-and-zoom render, so the service works without a provider."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import msgspec

from models_registry.base import (
    GeneratedVideo,
    GenerationJob,
    ModelPlugin,
    Progress,
    parse_duration,
)
from models_registry.cpu import cores, run_cpu
from models_registry.local.render import render_pan_zoom
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
    max_concurrency: ClassVar[int] = cores()  # CPU-bound: one render per core
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
        """Render the clip in the CPU pool (``models_registry.cpu``) and report the length probed from the file."""
        seconds = parse_duration(job.duration)
        out_path = job.workdir / f"{job.job_id}.mp4"
        await job.report_progress(Progress("rendering pan-and-zoom", fraction=0.0))
        await run_cpu(
            partial(
                render_pan_zoom,
                job.image.data,
                out_path,
                seconds=seconds,
                width=self.width,
                height=self.height,
                fps=self.fps,
                seed=job.prompt,
            )
        )
        await job.report_progress(Progress("checking the video", fraction=0.9))
        info = await run_cpu(probe_video, out_path)
        await job.report_progress(Progress("done", fraction=1.0))
        return GeneratedVideo(out_path, info.duration_seconds)
