"""Storage on a local directory, for the embedded single-machine setup.

Layout: object ``a/b.mp4`` is the file ``<root>/a/b.mp4``; its content type and metadata live in
the sidecar ``<root>/a/b.mp4.meta.json`` (so the suffix ``.meta.json`` is reserved). Writes go to
a temporary file in the target's directory and are renamed into place, so a reader sees the old
object or the new one, never half of one. Downloads are served by the API through signed links
(see ``service.storage.endpoints``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from service.storage.base import InvalidKey, ObjectHead, ObjectNotFound, ObjectTooLarge, UploadTarget
from service.storage.keys import validate_key
from service.storage.signing import sign_download, sign_upload

META_SUFFIX = ".meta.json"
_TMP_PREFIX = ".vg-tmp-"
_CHUNK = 1024 * 1024


class LocalStorage:
    """The Storage protocol on a directory; every key resolves inside ``root`` or is refused."""

    def __init__(self, root: Path, *, signing_secret: str, base_url: str = "") -> None:
        # Absolute now, so a later chdir cannot move the storage.
        self.root = Path(root).absolute()
        self._signing_secret = signing_secret
        self._base_url = base_url.rstrip("/")

    async def open(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        def writable() -> None:
            if not (self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)):
                raise OSError(f"storage directory {self.root} is missing or not writable")

        await asyncio.to_thread(writable)

    def path_for(self, key: str) -> Path:
        """The file holding ``key``, after checking the key shape and that symlinks stay in root."""
        validate_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise InvalidKey(f"key {key!r} resolves outside the storage directory")
        # Checked on the key and on the symlink target: sidecars and temp files are not objects.
        for name in (key.rsplit("/", 1)[-1], path.name):
            if name.endswith(META_SUFFIX) or name.startswith(_TMP_PREFIX):
                raise InvalidKey(f"reserved name in key {key!r}")
        return path

    async def _resolve(self, key: str) -> Path:
        # resolve() reads symlinks from disk, so it runs off the event loop like any file I/O.
        return await asyncio.to_thread(self.path_for, key)

    async def read(self, key: str, *, max_bytes: int) -> bytes:
        # One trip to a thread for the whole read: resolving the key reads symlinks from disk too.
        return await asyncio.to_thread(lambda: _read_limited(key, self.path_for(key), max_bytes))

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, str]) -> None:
        await asyncio.to_thread(self._put, key, lambda out: out.write(data), content_type, metadata)

    async def put_file(self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]) -> None:
        def copy(out: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)

        await asyncio.to_thread(self._put, key, copy, content_type, metadata)

    def _put(self, key: str, write: Callable[[BinaryIO], object], content_type: str, metadata: dict[str, str]) -> None:
        """Both files written and synced, then renamed sidecar first (an object that exists always
        has its own metadata beside it), then one sync of the directory for both renames."""
        path = self.path_for(key)
        body = json.dumps({"content_type": content_type, "metadata": dict(metadata)}).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        meta_tmp = _synced_temp(path.parent, lambda out: out.write(body))
        try:
            object_tmp = _synced_temp(path.parent, write)
        except BaseException:
            _unlink_quietly(meta_tmp)
            raise
        os.replace(meta_tmp, _meta_path(path))
        os.replace(object_tmp, path)
        _fsync_dir(path.parent)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread((await self._resolve(key)).is_file)

    async def head(self, key: str) -> ObjectHead | None:
        path = await self._resolve(key)
        return await asyncio.to_thread(_head, path)

    async def delete(self, key: str) -> None:
        path = await self._resolve(key)
        await asyncio.to_thread(_unlink_quietly, path)
        await asyncio.to_thread(_unlink_quietly, _meta_path(path))

    async def content_type(self, key: str) -> str | None:
        """The content type recorded at write time, or None (no sidecar, unreadable sidecar)."""
        meta = _meta_path(await self._resolve(key))
        try:
            raw = await asyncio.to_thread(meta.read_text, encoding="utf-8")
            return json.loads(raw).get("content_type")
        except (OSError, ValueError, AttributeError):
            return None

    async def download_url(self, key: str, *, expires_in: int) -> str:
        await self._resolve(key)
        expires = int(time.time()) + int(expires_in)
        signature = sign_download(self._signing_secret, key, expires)
        return f"{self._base_url}/video-gen/files/{quote(key, safe='/')}?expires={expires}&signature={signature}"

    async def upload_url(self, key: str, *, content_type: str, content_length: int, expires_in: int) -> UploadTarget:
        await self._resolve(key)
        expires = int(time.time()) + int(expires_in)
        signature = sign_upload(self._signing_secret, key, content_type, content_length, expires)
        query = urlencode({"expires": expires, "type": content_type, "length": content_length, "signature": signature})
        return UploadTarget(
            f"{self._base_url}/video-gen/uploads/{quote(key, safe='/')}?{query}", "PUT", {"Content-Type": content_type}
        )


def _head(path: Path) -> ObjectHead | None:
    try:
        size = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    metadata = meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {}
    return ObjectHead(size=size, content_type=meta.get("content_type"), metadata=metadata)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + META_SUFFIX)


def _read_limited(key: str, path: Path, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise ObjectTooLarge(key, size, max_bytes)
            # The file may grow between fstat and read; one byte more than allowed tells us.
            data = f.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ObjectNotFound(key) from None
    if len(data) > max_bytes:
        raise ObjectTooLarge(key, len(data), max_bytes)
    return data


def _synced_temp(directory: Path, write: Callable[[BinaryIO], object]) -> Path:
    """A temporary file in ``directory`` holding what ``write`` wrote, flushed to disk."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        _unlink_quietly(Path(tmp))
        raise
    return Path(tmp)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
