"""Request and response bodies of the image-to-video endpoint, exactly as the spec shows them."""

from __future__ import annotations

from typing import Any

import msgspec


class ImageToVideoRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """The spec's request body, plus the optional ``model`` and ``options`` of the plugin registry."""

    id: str
    """S3 key of the source image (under ``images/{user_id}/`` by default)."""
    prompt: str
    """Animation prompt."""
    duration: str | None = None
    """'5s', '8s' or '10s' (the model's durations); the model's default when absent."""
    project_id: str | None = None
    """Optional project identifier, stored on the generation record."""
    model: str | None = None
    """A model from ``GET /video-gen/models``; ``DEFAULT_MODEL`` when absent."""
    options: dict[str, Any] | None = None
    """Model-specific options passed to the plugin."""

    def __post_init__(self) -> None:
        # msgspec is the fast gate; the full class-validator message list is built on failure.
        if not self.id or not self.prompt:
            raise ValueError("should not be empty")


class Credits(msgspec.Struct):
    used: int
    balance: float


class ImageToVideoResponse(msgspec.Struct, rename="camel", kw_only=True):
    """The spec's 200 body."""

    success: bool
    s3_key: str
    model: str
    credits: Credits
    duration: str
    generation_time: int


class JobAccepted(msgspec.Struct, rename="camel", kw_only=True):
    """202: the generation goes on; poll ``statusUrl``."""

    success: bool
    job_id: str
    status: str
    status_url: str


class GenerationOut(msgspec.Struct, rename="camel", kw_only=True):
    """A generation record as users and admins see it."""

    id: str
    user_id: str
    project_id: str | None
    model: str
    prompt: str
    source_key: str
    requested_duration: str
    duration: str | None
    status: str
    s3_key: str | None
    credits_charged: int
    credits_refunded: int
    error: str | None
    generation_time: int | None
    created_at: str
    finished_at: str | None
    download_url: str | None = None
    """A short-lived link to the video (``DOWNLOAD_URL_SECONDS``), on succeeded generations."""


class GenerationPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[GenerationOut]
    next_cursor: str | None


def format_duration(seconds: float) -> str:
    """A probed length as the API spells durations: ``8s``; ``7.5s`` when it is not whole."""
    whole = round(seconds)
    if abs(seconds - whole) < 0.05:
        return f"{whole}s"
    return f"{seconds:.1f}s"
