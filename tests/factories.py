"""Factories with keyword defaults: images, tokens, requests, credits, a fast test model."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from typing import Any

from PIL import Image

from models_registry.base import GeneratedVideo, GenerationJob, ModelPlugin
from models_registry.local.plugin import LocalPanZoomModel
from models_registry.registry import ModelRegistry
from service.core.auth import make_token
from service.core.errors import AppError
from service.core.settings import Settings
from service.generations import settlement, transitions
from service.generations.records import NewGeneration
from service.generations.settlement import Charged
from service.generations.status import GenerationStatus
from service.generations.tables import Generation
from service.jobs.messages import DATA_FIELD, DeadLetter, JobMessage, encode
from service.jobs.stream import JobStream
from service.ledger import service as ledger
from service.storage.factory import storage_from_settings


def make_image(
    *, width: int = 64, height: int = 36, fmt: str = "PNG", color: tuple[int, int, int] = (200, 120, 40)
) -> bytes:
    """A real image (a gradient, so pan and zoom show) in ``fmt``."""
    img = Image.new("RGB", (width, height), color)
    for x in range(width):
        for y in range(0, height, max(height // 6, 1)):
            img.putpixel((x, y), (x * 255 // max(width - 1, 1), 80, 160))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def token_for(
    settings: Settings, user_id: str = "u1", *, roles: list[str] | None = None, ttl: timedelta = timedelta(minutes=30)
) -> str:
    return make_token(settings.jwt_secret, user_id, roles=roles, ttl=ttl)


def image_request(**overrides: Any) -> dict[str, Any]:
    """The spec's first curl body for user ``u1``, with overrides."""
    body: dict[str, Any] = {
        "id": "images/u1/source-image.png",
        "prompt": "A beautiful sunset over the ocean",
        "duration": "5s",
        "projectId": "project-456",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def seed_image(
    settings: Settings, *, user_id: str = "u1", name: str = "source-image.png", data: bytes | None = None
) -> str:
    """Store an image under the user's prefix; returns its key."""
    key = f"images/{user_id}/{name}"
    storage = storage_from_settings(settings)
    await storage.open()
    try:
        await storage.put_bytes(key, data or make_image(), content_type="image/png", metadata={})
    finally:
        await storage.close()
    return key


async def grant(user_id: str = "u1", amount: int = 750, *, reason: str = "test grant") -> int:
    return await ledger.grant(user_id, amount, actor="test", reason=reason)


def new_generation(
    generation_id: str = "g1",
    user_id: str = "u1",
    *,
    project_id: str | None = "project-456",
    model: str = "local",
    **fields: Any,
) -> NewGeneration:
    """A generation as a job describes it before it is charged."""
    values: dict[str, Any] = dict(
        id=generation_id,
        user_id=user_id,
        model=model,
        prompt="a prompt",
        source_key=f"images/{user_id}/source-image.png",
        requested_duration="5s",
        project_id=project_id,
    )
    values.update(fields)
    return NewGeneration(**values)


async def charge(generation_id: str = "g1", user_id: str = "u1", cost: int = 750, **fields: Any) -> Charged:
    """Charge a new generation the way a worker does (the record and its debit together)."""
    return await settlement.charge(new_generation(generation_id, user_id, **fields), cost=cost, attempts=1)


async def set_columns(generation_id: str, **values: Any) -> None:
    """Write generation columns directly, past the named transitions (for tests of the guards)."""
    await Generation.update({getattr(Generation, k): v for k, v in values.items()}).where(
        Generation.id == generation_id
    )


async def make_generation(
    user_id: str = "u1",
    *,
    cost: int = 750,
    generation_id: str | None = None,
    status: str = "running",
    project_id: str | None = "project-456",
    model: str = "local",
    fund: bool = True,
    **fields: Any,
) -> str:
    """A generation charged through the ledger (funded first unless ``fund=False``); returns its id.

    ``status='succeeded'`` also sets an output key and duration; ``status='failed'`` fails it the
    way the workers do (refunded in the same transaction).
    """
    import uuid

    generation_id = generation_id or uuid.uuid4().hex
    if fund and cost:
        await ledger.grant(user_id, cost, actor="test", reason="fund a test generation")
    charged = await charge(generation_id, user_id, cost, project_id=project_id, model=model, **fields)
    if status == GenerationStatus.SUCCEEDED:
        await transitions.succeed(
            charged.record, output_key=f"videos/{user_id}/{generation_id}.mp4", duration_seconds=5.0, generation_ms=1234
        )
    elif status == GenerationStatus.FAILED:
        await settlement.fail(charged.record, AppError("test failure", 500))
    return generation_id


async def bury_job(stream: JobStream, job: JobMessage, *, reason: str = "unknown model 'gone'") -> str:
    """A dead letter holding ``job``, as a worker leaves it; returns its id on the dead-letter stream."""
    letter = DeadLetter(
        message_id="1-0", reason=reason, data=encode(job).decode(), job_id=job.job_id, dead_at=time.time()
    )
    return (await stream.redis.xadd(stream.keys.dead_letter_stream, {DATA_FIELD: encode(letter)})).decode()


def job_message(job_id: str | None = None, user_id: str = "u1", **fields: Any) -> JobMessage:
    """A job as the API queues it (for ``user_id``'s stored source image, the local model)."""
    import uuid

    values: dict[str, Any] = dict(
        job_id=job_id or uuid.uuid4().hex,
        user_id=user_id,
        model="local",
        prompt="a prompt",
        source_key=f"images/{user_id}/source-image.png",
        duration="5s",
        submitted_at=time.time(),
    )
    values.update(fields)
    return JobMessage(**values)


class FailingModel(ModelPlugin):
    """Fails every generation: for refund paths."""

    name = "failing"
    durations = ("5s", "8s", "10s")
    default_duration = "8s"
    timeout_seconds = 10.0

    def cost(self, duration: str, options: object) -> int:
        return 750

    async def generate(self, job: GenerationJob) -> GeneratedVideo:
        raise RuntimeError("the model exploded")


class TestModels:
    """The registry tests use: the entry-point plugins plus test-only ones."""

    extra: tuple[type, ...] = (FailingModel,)

    @classmethod
    def registry(cls) -> ModelRegistry:
        return ModelRegistry.load(extra=cls.extra)


__all__ = ["LocalPanZoomModel"]
