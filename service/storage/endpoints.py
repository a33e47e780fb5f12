"""Downloads of LocalStorage objects through the signed links made by ``LocalStorage.download_url``.

S3 hands out presigned URLs and never needs this route; with S3 it answers 404. Like S3, it
answers a single ``Range: bytes=...`` with 206 and that part (``Accept-Ranges: bytes`` on every
answer), so a browser can seek and Safari can play the video; an unsatisfiable range is a 416
with ``Content-Range: bytes */<size>``; several ranges get the whole file (200), as RFC 9110
allows.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import File, Stream

from service.core.errors import Forbidden, NotFound
from service.core.settings import Settings
from service.storage.base import InvalidKey, Storage
from service.storage.local import LocalStorage
from service.storage.signing import verify_download_signature

DEFAULT_MEDIA_TYPE = "video/mp4"
CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """``(first, last)`` of a single satisfiable byte range; None to send the whole file (no or
    several ranges, or one we do not parse); False when it cannot be satisfied (416)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        return (max(size - length, 0), size - 1) if length > 0 and size > 0 else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return False
    return start, end


async def _part(path: Path, first: int, last: int) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        await asyncio.to_thread(f.seek, first)
        left = last - first + 1
        while left > 0:
            chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


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
        request: Request[Any, Any, Any],
        storage: NamedDependency[Storage],
        settings: NamedDependency[Settings],
        key: FromPath[Path],
        expires: FromQuery[str | None] = None,
        signature: FromQuery[str | None] = None,
    ) -> File | Response[Any]:
        """Stream the object if the link is genuine and unexpired; 403 otherwise, 404 if missing."""
        # Litestar hands the path parameter over with its leading slash.
        object_key = str(key).removeprefix("/")
        if not verify_download_signature(settings.jwt_secret, object_key, expires, signature):
            raise Forbidden("Invalid or expired download link")
        path, info, media_type = await _local_file(storage, object_key)
        return _answer(path, info, media_type, parse_range(request.headers.get("range"), info.st_size))


async def _local_file(storage: Storage, object_key: str) -> tuple[Path, os.stat_result, str]:
    """The regular file holding ``object_key`` in a local storage, its stat and its content type;
    404 otherwise."""
    if not isinstance(storage, LocalStorage):
        raise NotFound(f"File not found: {object_key}")
    try:
        path = await asyncio.to_thread(storage.path_for, object_key)
        info = await asyncio.to_thread(os.stat, path)
    except (InvalidKey, FileNotFoundError, NotADirectoryError):
        raise NotFound(f"File not found: {object_key}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotFound(f"File not found: {object_key}")
    return path, info, await storage.content_type(object_key) or DEFAULT_MEDIA_TYPE


def _answer(
    path: Path, info: os.stat_result, media_type: str, wanted: tuple[int, int] | bool | None
) -> File | Response[Any]:
    """The whole file (200), the ``wanted`` part of it (206), or 416 when it cannot be satisfied."""
    if wanted is False:
        return Response(
            b"", status_code=416, headers={"Content-Range": f"bytes */{info.st_size}", "Accept-Ranges": "bytes"}
        )
    if wanted:
        first, last = wanted
        headers = {
            "Content-Range": f"bytes {first}-{last}/{info.st_size}",
            "Content-Length": str(last - first + 1),
            "Accept-Ranges": "bytes",
        }
        return Stream(_part(path, first, last), status_code=206, media_type=media_type, headers=headers)
    return File(
        path,
        headers={"Accept-Ranges": "bytes"},
        filename=path.name,
        media_type=media_type,
        content_disposition_type="inline",
        stat_result=info,
    )
