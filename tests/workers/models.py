"""Test model plugins whose behaviour each test steers through ``options`` (no network, no video codec).

``ScriptedModel`` ("scripted") plays a provider: the first delivery of a job "submits" (a new
request id, saved through the job's callback, counted in ``submissions``), later deliveries get
the saved id and resume it. ``options``:

- ``crash``: raise ``SimulatedCrash`` (a BaseException: nothing in the worker catches it, like a
  process dying) after the request id is saved, on the deliveries whose attempt number is listed;
- ``sleep``: seconds to work, reporting progress;
- ``gate``: wait until ``ScriptedModel.gates[<name>]`` is set;
- ``fail``: raise ``GenerationFailed`` with this text.

A run stopped by a cancel is counted in ``stopped``; the provider requests it was asked to cancel
(the ``cancel`` hook) are listed in ``provider_cancels``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import ClassVar

import msgspec

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin, Progress, parse_duration
from models_registry.errors import GenerationFailed
from models_registry.registry import ModelRegistry
from tests.factories import FailingModel


class SimulatedCrash(BaseException):
    """The worker "dies" here: the job is neither failed, replied nor acknowledged."""


class ScriptedOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    crash: list[int] = []
    sleep: float = 0.0
    gate: str | None = None
    fail: str | None = None


class ScriptedModel(ModelPlugin):
    name = "scripted"
    Options = ScriptedOptions
    durations = ("5s", "8s", "10s")
    default_duration = "5s"
    timeout_seconds = 60.0

    submissions: ClassVar[Counter[str]] = Counter()  # job id -> provider submissions
    generations: ClassVar[Counter[str]] = Counter()  # job id -> generate() calls
    gates: ClassVar[dict[str, asyncio.Event]] = {}
    stopped: ClassVar[Counter[str]] = Counter()  # job id -> runs stopped (cancelled)
    provider_cancels: ClassVar[list[str]] = []

    @classmethod
    def reset(cls) -> None:
        cls.submissions.clear()
        cls.generations.clear()
        cls.gates.clear()
        cls.stopped.clear()
        cls.provider_cancels.clear()

    async def cancel(self, request_id: str) -> None:
        self.provider_cancels.append(request_id)

    def cost(self, duration: str, options: object) -> int:
        return 750

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        try:
            return await self._generate(job)
        except asyncio.CancelledError:
            self.stopped[job.job_id] += 1
            raise

    async def _generate(self, job: GenerationJob) -> GeneratedVideo:
        self.generations[job.job_id] += 1
        attempt = self.generations[job.job_id]
        if job.provider_request_id is None:
            self.submissions[job.job_id] += 1
            await job.save_provider_request_id(f"req-{job.job_id}-{attempt}")
        await job.report_progress(Progress("working", fraction=0.1))
        options: ScriptedOptions = job.options
        if attempt in options.crash:
            raise SimulatedCrash(f"crash on attempt {attempt}")
        if options.fail is not None:
            raise GenerationFailed(options.fail)
        if options.gate:
            await self.gates.setdefault(options.gate, asyncio.Event()).wait()
        sleep = options.sleep
        steps = max(int(sleep / 0.1), 1)
        for i in range(steps):
            await asyncio.sleep(sleep / steps)
            await job.report_progress(Progress("working", fraction=0.1 + 0.8 * (i + 1) / steps))
        path = job.workdir / "video.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real video")
        return GeneratedVideo(path=path, duration_seconds=float(parse_duration(job.duration)))


class OtherScriptedModel(ScriptedModel):
    """The scripted model under another name: a second model for the per-model slots."""

    name = "scripted-other"


def registry() -> ModelRegistry:
    """The entry-point plugins plus the failing and scripted test models."""
    return ModelRegistry.load(extra=(FailingModel, ScriptedModel, OtherScriptedModel))
