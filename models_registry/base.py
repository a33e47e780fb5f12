"""The model plugin contract.

A plugin is one class registered under the entry-point group ``video_gen.models``::

    [project.entry-points."video_gen.models"]
    my-model = "my_package.plugin:MyModel"

The class is instantiated once per process with no arguments. It declares:

- ``name``: the value clients send as ``model`` (unique across installed plugins);
- ``durations``: the durations it offers, as the API spells them (``"5s"``, ``"8s"``...);
- ``default_duration``: one of ``durations``, used when a request names none;
- ``timeout_seconds``: how long one ``generate`` call may take before the job fails;
- ``Options``: a ``msgspec.Struct`` with ``forbid_unknown_fields=True`` (``models_registry.options``);
  the request's ``options`` are converted into it before anything is queued or charged;
- ``cost(duration, options) -> int``: credits charged for one generation (the cost rule), where
  ``options`` is an ``Options`` instance; ``price_options`` names the options it depends on;
- ``readiness() -> str | None``: ``None`` when the model can run here, else why not (a missing
  key): such a model is shown as unavailable and refused before any charge.
- ``max_concurrency``: how many of its generations one worker process runs at once (optional:
  default ``WORKER_CONCURRENCY``; the operator's ``MODEL_CONCURRENCY`` overrides it). A provider
  model that mostly waits declares hundreds; a CPU-bound one the cores, and runs its CPU work
  through ``models_registry.cpu.run_cpu``, never on the event loop;

and implements ``async generate(job) -> GeneratedVideo``. Optional ``async open(settings)`` and
``async close()`` run once per process lifespan (open clients, sessions...). A plugin reads its own
configuration from the environment (``models_registry.settings.read_settings``); it raises the
errors of ``models_registry.errors`` and imports nothing from the service.

Optional ``async cancel(request_id)`` asks the provider to stop a request a cancelled job left
running. A job cancelled while ``generate`` runs is stopped by cancelling its asyncio task
(``CancelledError`` at the current ``await``); work done in a thread must stop on its own (see
the local model). Then, if the job saved a provider request id, ``cancel`` is called with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from models_registry.options import NoOptions

ENTRY_POINT_GROUP = "video_gen.models"


@dataclass(frozen=True)
class SourceImage:
    """The validated source image, read once from storage."""

    key: str
    data: bytes
    content_type: str  # image/png, image/jpeg or image/webp, sniffed from the bytes
    url: str | None = None  # a short-lived presigned URL, when the storage offers one


@dataclass(frozen=True)
class Progress:
    """A progress report: ``fraction`` in [0, 1] when known, and a short human message."""

    message: str
    fraction: float | None = None
    queue_position: int | None = None


async def _ignore_progress(progress: Progress) -> None:
    return None


async def _ignore_request_id(request_id: str) -> None:
    return None


@dataclass
class GenerationJob:
    """Everything a plugin needs for one generation."""

    job_id: str
    prompt: str
    duration: str
    image: SourceImage
    workdir: Path  # private and empty when generate starts, the job's alone; write the video here
    # The model's ``Options`` instance, checked by the API before anything was charged.
    options: Any = field(default_factory=NoOptions)
    # The provider's request id from an earlier delivery of this job: resume it, never resubmit.
    provider_request_id: str | None = None
    report_progress: Callable[[Progress], Awaitable[None]] = _ignore_progress
    # Persist the provider's request id *before* waiting on it, so a crash can resume it.
    save_provider_request_id: Callable[[str], Awaitable[None]] = _ignore_request_id


@dataclass(frozen=True)
class GeneratedVideo:
    """A finished video on local disk and its real length, probed from the file."""

    path: Path
    duration_seconds: float
    content_type: str = "video/mp4"


class ModelPlugin:
    """Base class for plugins. Subclassing is optional; the attributes and ``generate`` are not."""

    name: ClassVar[str]
    durations: ClassVar[tuple[str, ...]]
    default_duration: ClassVar[str]
    timeout_seconds: ClassVar[float] = 600.0
    max_concurrency: ClassVar[int | None] = None  # None: WORKER_CONCURRENCY
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    # The options the cost depends on (Literals or booleans): the catalogue prices every combination.
    price_options: ClassVar[tuple[str, ...]] = ()
    # Without DEFAULT_MODEL, requests naming no model go to the available model ranked highest.
    default_rank: ClassVar[int] = 0
    # Whether generate() wants ``job.image.url`` (a presigned URL) besides the image's bytes.
    wants_image_url: bool = False

    def cost(self, duration: str, options: Any) -> int:
        """Credits charged for one generation of ``duration`` with ``options`` (an ``Options``)."""
        raise NotImplementedError

    def readiness(self) -> str | None:
        """``None`` when this model can run in this process; otherwise the reason it cannot."""
        return None

    async def open(self, settings: Any) -> None:
        """Acquire per-process resources (HTTP clients...). Called once before any generate."""

    async def close(self) -> None:
        """Release what ``open`` acquired."""

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        raise NotImplementedError

    async def cancel(self, request_id: str) -> None:
        """Ask the provider to stop ``request_id`` (saved by ``save_provider_request_id``) after its
        job was cancelled; best effort, the job is cancelled and refunded either way. Default: nothing."""


def parse_duration(value: str) -> int:
    """``"8s"`` -> 8. Durations are whole seconds with an ``s`` suffix throughout the API."""
    if not value.endswith("s") or not value[:-1].isdigit():
        raise ValueError(f"not a duration: {value!r}")
    return int(value[:-1])
