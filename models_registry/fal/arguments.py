"""fal's input for one job: the model's options as they are, the prompt, fal's duration and the
source image (its presigned URL or the image itself as a data URI)."""

from __future__ import annotations

from typing import Any

import fal_client
import msgspec

from models_registry.base import GenerationJob
from models_registry.errors import ProviderRejected
from models_registry.fal.durations import DurationPlan


def fal_arguments(
    job: GenerationJob,
    plan: DurationPlan,
    options_type: type,
    *,
    model: str,
    max_image_bytes: int,
    send_image_url: bool,
) -> dict[str, Any]:
    """The input fal gets; refuses an image over fal's size limit before anything is sent.
    Options left unset (``None``) are left out, so fal applies its own defaults."""
    image = job.image
    if len(image.data) > max_image_bytes:
        raise ProviderRejected(
            f"The source image is {len(image.data) / 2**20:.1f} MB; {model} accepts at most "
            f"{max_image_bytes / 2**20:g} MB"
        )
    image_url = image.url if send_image_url and image.url else fal_client.encode(image.data, image.content_type)
    options = {k: v for k, v in msgspec.structs.asdict(job_options(job, options_type)).items() if v is not None}
    return {**options, "prompt": job.prompt, "duration": plan.fal_duration, "image_url": image_url}


def job_options(job: GenerationJob, options_type: type) -> Any:
    """The job's ``Options`` (a job built by hand may carry a dict or none: defaults apply)."""
    if isinstance(job.options, options_type):
        return job.options
    raw = job.options if isinstance(job.options, dict) else msgspec.structs.asdict(job.options)
    return msgspec.convert(raw, options_type)
