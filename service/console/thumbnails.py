"""Thumbnails of source images: small JPEGs made on request, for the console's lists.

The source is read through the storage (so S3 and the local directory alike), within the
service's own size limit, and shrunk with Pillow off the event loop.
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image, UnidentifiedImageError

from service.core.errors import NotFound
from service.storage.base import InvalidKey, ObjectNotFound, ObjectTooLarge, Storage

SIZE = (192, 108)


def _shrink(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", SIZE)  # JPEG sources decode at a reduced scale at once
        small = image.convert("RGB")
        small.thumbnail(SIZE)
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=80)
        return out.getvalue()


async def thumbnail(storage: Storage, key: str, *, max_bytes: int) -> bytes:
    """A JPEG at most 192x108 of the image at ``key``; 404 when it is missing or not an image."""
    try:
        data = await storage.read(key, max_bytes=max_bytes)
        return await asyncio.to_thread(_shrink, data)
    except (ObjectNotFound, ObjectTooLarge, InvalidKey, UnidentifiedImageError, OSError):
        raise NotFound(f"No thumbnail for {key}") from None
