"""Fetching fal's finished video from its file host, streamed to disk with a size limit."""

from __future__ import annotations

from pathlib import Path

import httpx

from models_registry.errors import GenerationFailed
from models_registry.fal.errors import with_retries

CHUNK_BYTES = 64 * 1024


async def download_video(
    http: httpx.AsyncClient, url: str, dest: Path, *, max_bytes: int, attempts: int, base_delay: float
) -> None:
    """Stream the video to ``dest`` chunk by chunk: never the whole file in memory, and never more
    than ``max_bytes`` on disk. ``http`` is not fal's client: that one carries the FAL_KEY header,
    which must not go to the file host."""

    async def once() -> None:
        size = 0
        async with http.stream("GET", url) as response:
            response.raise_for_status()
            with dest.open("wb") as f:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise GenerationFailed(f"fal's video is larger than {max_bytes} bytes")
                    f.write(chunk)

    # The video may be large: bounded by the download client's timeouts, not the call budget.
    await with_retries(once, what="downloading the video", attempts=attempts, base_delay=base_delay)
