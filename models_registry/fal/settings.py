"""What the fal.ai plugins read from the environment (``FAL_*``), once, when they are created."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from models_registry.settings import read_settings


class FalSettings(msgspec.Struct, kw_only=True, frozen=True):
    """``FAL_KEY``, ``FAL_POLL_SECONDS``... shared by every model on fal.ai."""

    key: str | None = None
    """fal's API key; without it the fal models are shown as unavailable and refused."""
    poll_seconds: float = 3.0
    """The wait after the first status poll of a running request (made at once); each later wait is
    1.5 times longer (give or take 20 %), up to ``poll_max_seconds``."""
    poll_max_seconds: float = 10.0
    """The longest wait between two status polls of one request."""
    send_image_url: bool = False
    """Send fal a presigned URL of the source image instead of its bytes (a data URI)."""
    request_seconds: float = 10.0
    """The most one call to fal (submit, one status poll, the result) may take, fal-client's own
    retries included: they would otherwise stack (10 attempts, up to 10 s apart) under ours."""
    retry_seconds: float = 15.0
    """The most one step may spend retrying transient failures: past it an unreachable fal fails
    the job (refunded) instead of holding it for minutes."""


def fal_settings(env: Mapping[str, str] | None = None) -> FalSettings:
    """``FalSettings`` from ``FAL_*`` environment variables."""
    return read_settings(FalSettings, "FAL_", env)
