"""Benchmark-only model plugins, installed into the environment for a benchmark run and removed after.

``bench-noop`` writes a small pre-encoded H.264 clip (1 s, 64x64, read once per process with its
probed length) into the job's workdir, in one ``open``/``write``/``close`` in a thread: the model
costs next to nothing, so what a benchmark measures is the service around it. ``bench-sleep``
waits ``BENCH_SLEEP_SECONDS`` (default 2) first, like a provider that takes its time. Both cost
1 credit.

Written against the public plugin contract only, as a third party's plugin would be.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin

CLIP = Path(os.environ.get("BENCH_CLIP") or Path(tempfile.gettempdir()) / "video-gen-bench-clip.mp4")


def encode_clip(path: Path = CLIP) -> float:
    """Write the clip once (atomically: several processes may race) and return its probed length."""
    from PIL import Image

    from models_registry.video import H264Writer, probe_video

    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.mp4")
        with H264Writer(tmp, 64, 64, 8) as writer:
            for i in range(8):
                writer.write(Image.new("RGB", (64, 64), (i * 30 % 256, 80, 160)))
        os.replace(tmp, path)
    return probe_video(path).duration_seconds


class NoopModel(ModelPlugin):
    name = "bench-noop"
    durations = ("5s", "8s", "10s")
    default_duration = "5s"
    timeout_seconds = 600.0
    description = "benchmark only: a pre-encoded clip, no model time"
    sleep_seconds = 0.0

    def __init__(self) -> None:
        self._length: float | None = None
        self._clip = b""

    def cost(self, duration: str, *args: object) -> int:
        return 1

    async def open(self, settings: object = None) -> None:
        self._length = await asyncio.to_thread(encode_clip, CLIP)
        self._clip = await asyncio.to_thread(CLIP.read_bytes)

    async def close(self) -> None:
        return None

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        if self.sleep_seconds:
            await asyncio.sleep(self.sleep_seconds)
        if self._length is None:
            await self.open()
        out = job.workdir / "out.mp4"
        await asyncio.to_thread(_write, out, self._clip)  # a plugin never blocks the event loop
        return GeneratedVideo(out, self._length)


def _write(path: Path, data: bytes) -> None:
    # Three system calls, where shutil.copyfile makes about fifteen.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class SleepModel(NoopModel):
    name = "bench-sleep"
    description = "benchmark only: BENCH_SLEEP_SECONDS of model time, then the pre-encoded clip"
    sleep_seconds = float(os.environ.get("BENCH_SLEEP_SECONDS", "2"))
