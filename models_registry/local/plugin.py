"""The ``local`` model: an offline pan-and-zoom render, so the service works without a provider."""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from pathlib import Path
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
        """Render the clip in the CPU pool (``models_registry.cpu``), reporting the share of frames
        rendered, and report the length probed from the file. Cancelled, the render stops at its
        next frame (it runs in another process: a ``stop`` file in the job's workdir tells it)."""
        seconds = parse_duration(job.duration)
        out_path = job.workdir / f"{job.job_id}.mp4"
        control = job.workdir / "render-control"
        control.mkdir(exist_ok=True)
        await job.report_progress(Progress("rendering pan-and-zoom", fraction=0.0))
        render = asyncio.ensure_future(
            run_cpu(
                partial(
                    render_with_control,
                    job.image.data,
                    out_path,
                    control,
                    seconds=seconds,
                    width=self.width,
                    height=self.height,
                    fps=self.fps,
                    seed=job.prompt,
                )
            )
        )
        await _follow(render, control, job)
        await job.report_progress(Progress("checking the video", fraction=0.9))
        info = await run_cpu(probe_video, out_path)
        await job.report_progress(Progress("done", fraction=1.0))
        return GeneratedVideo(out_path, info.duration_seconds)


PROGRESS_EVERY = 0.5  # seconds between reads of the render's progress
STOP, PROGRESS = "stop", "progress"


def render_with_control(image: bytes, out_path: Path, control: Path, **options: Any) -> Path:
    """``render_pan_zoom`` that writes ``<frames done> <count>`` to ``control/progress`` about once
    a second of video and stops (``RenderStopped``) once ``control/stop`` exists. Module level and
    plain arguments: it runs in the CPU pool's processes."""
    every = max(int(options.get("fps", 24)), 1)

    def on_frame(done: int, count: int) -> None:
        if (control / STOP).exists():
            raise RenderStopped(f"render stopped at frame {done} of {count}")
        if done % every == 0 and done < count:
            tmp = control / f"{PROGRESS}.tmp"
            tmp.write_text(f"{done} {count}")
            os.replace(tmp, control / PROGRESS)

    return render_pan_zoom(image, out_path, on_frame=on_frame, **options)


def _read_progress(control: Path) -> tuple[int, int] | None:
    try:
        frame, count = (int(n) for n in (control / PROGRESS).read_text().split())
    except (OSError, ValueError):
        return None
    return (frame, count) if count > 0 else None


async def _follow(render: asyncio.Future[Any], control: Path, job: GenerationJob) -> None:
    """Wait for ``render``, reporting the frames it has rendered; stop it if the wait is cancelled."""
    try:
        while not render.done():
            await asyncio.wait([render], timeout=PROGRESS_EVERY)
            done = _read_progress(control)
            if done is not None and not render.done():
                frame, count = done
                await job.report_progress(
                    Progress(f"rendering frame {frame} of {count}", fraction=round(0.9 * frame / count, 3))
                )
        await render
    except BaseException:
        with contextlib.suppress(OSError):  # cancelled (the job, its timeout, a shutdown): stop the render
            (control / STOP).touch()
        render.cancel()
        raise
