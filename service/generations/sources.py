"""The source image a generation's model gets: checked, read once, and presigned when the model wants a URL."""

from __future__ import annotations

from models_registry.base import ModelPlugin, SourceImage
from service.core.settings import Settings
from service.jobs.messages import JobMessage
from service.storage.base import Storage
from service.storage.images import load_source_image


async def load_source(storage: Storage, settings: Settings, job: JobMessage, plugin: ModelPlugin) -> SourceImage:
    """``job``'s checked source image, read once; also a presigned URL when ``plugin`` wants one."""
    checked = await load_source_image(
        storage,
        job.source_key,
        user_id=job.user_id,
        prefix_template=settings.source_key_prefix,
        max_bytes=settings.max_source_bytes,
        max_pixels=settings.max_source_pixels,
    )
    url = None
    if getattr(plugin, "wants_image_url", False):
        url = await storage.download_url(job.source_key, expires_in=settings.download_url_seconds)
    return SourceImage(key=checked.key, data=checked.data, content_type=checked.content_type, url=url)
