"""What the fal plugins read from fal's queue answers: progress, the video's URL; and cancelling."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fal_client import AsyncRequestHandle, InProgress, Queued, Status

from models_registry.base import Progress
from models_registry.errors import GenerationFailed

log = logging.getLogger(__name__)


def progress_of(status: Status, seen_logs: int) -> tuple[Progress | None, int]:
    """The report for a non-final status (queue position, newest log line) and logs seen so far."""
    if isinstance(status, Queued):
        return Progress(
            f"Waiting in fal.ai's queue (position {status.position})", queue_position=status.position
        ), seen_logs
    if isinstance(status, InProgress):
        logs = status.logs or []
        if len(logs) > seen_logs:
            return Progress(str(logs[-1].get("message", "")).strip() or "Generating on fal.ai"), len(logs)
        return (Progress("Generating on fal.ai") if not seen_logs else None), seen_logs
    return None, seen_logs


def video_url(result: Any) -> str:
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise GenerationFailed(f"fal.ai's result has no video URL: {json.dumps(result)[:200]}")
    return url


async def cancel(handle: AsyncRequestHandle | None) -> None:
    """Best effort: stop fal working (and billing) on a request nobody waits for any more."""
    if handle is None:
        return
    try:
        async with asyncio.timeout(5):
            await handle.cancel()
    except Exception as exc:  # the job fails with the timeout either way
        log.warning("could not cancel fal request %s: %s", handle.request_id, exc)
