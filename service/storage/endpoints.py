"""Downloads of LocalStorage objects through the signed links made by ``LocalStorage.download_url``.

S3 hands out presigned URLs and never needs this route; with S3 it answers 404.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import File

from service.core.errors import Forbidden, NotFound
from service.core.settings import Settings
from service.storage.base import InvalidKey, Storage
from service.storage.local import LocalStorage, verify_download_signature

DEFAULT_MEDIA_TYPE = "video/mp4"


class FilesController(Controller):
    """``GET /video-gen/files/{key}?expires=&signature=``: the signature is the credential.

    The app must exclude this path from JWT auth. The handler carries
    ``opt={"exclude_from_auth": True}``, which Litestar's ``JWTAuth`` honours by default; an app
    using its own auth middleware must skip ``/video-gen/files`` itself. The app provides the
    ``storage`` (opened) and ``settings`` (for ``jwt_secret``) dependencies.
    """

    path = "/video-gen/files"

    @get("/{key:path}", opt={"exclude_from_auth": True}, include_in_schema=False)
    async def download(
        self,
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        key: FromPath[Path],
        expires: FromQuery[str | None] = None,
        signature: FromQuery[str | None] = None,
    ) -> File:
        """Stream the object if the link is genuine and unexpired; 403 otherwise, 404 if missing."""
        # Litestar hands the path parameter over with its leading slash.
        object_key = str(key).removeprefix("/")
        if not verify_download_signature(settings.jwt_secret, object_key, expires, signature):
            raise Forbidden("Invalid or expired download link")
        if not isinstance(storage, LocalStorage):
            raise NotFound(f"File not found: {object_key}")
        try:
            path = await asyncio.to_thread(storage.path_for, object_key)
            info = await asyncio.to_thread(os.stat, path)
        except (InvalidKey, FileNotFoundError, NotADirectoryError):
            raise NotFound(f"File not found: {object_key}") from None
        if not stat.S_ISREG(info.st_mode):
            raise NotFound(f"File not found: {object_key}")
        media_type = await storage.content_type(object_key) or DEFAULT_MEDIA_TYPE
        return File(
            path,
            filename=path.name,
            media_type=media_type,
            content_disposition_type="inline",
            stat_result=info,
        )
