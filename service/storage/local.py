"""Storage on a local directory, for the embedded single-machine setup.

Layout: object ``a/b.mp4`` is the file ``<root>/a/b.mp4``; its content type and metadata live in
the sidecar ``<root>/a/b.mp4.meta.json`` (so the suffix ``.meta.json`` is reserved). Writes go to
a temporary file in the target's directory and are renamed into place, so a reader sees the old
object or the new one, never half of one. Downloads are served by the API through signed links
(see ``service.storage.endpoints``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

from service.storage import local_commit
from service.storage import local_files as files
from service.storage import local_writes as writes
from service.storage.base import InvalidKey, ObjectHead, ObjectTooLarge, UploadTarget
from service.storage.keys import validate_key
from service.storage.local_files import META_SUFFIX
from service.storage.signing import sign_download, sign_upload

# Reads and writes this small run on the event loop: less than a thread's hand-off costs (a 32 KiB
# PNG read and checked in 0.25 ms here); larger ones go to a thread.
INLINE_BYTES = 256 * 1024


class LocalStorage:
    """The Storage protocol on a directory; every key resolves inside ``root`` or is refused."""

    def __init__(self, root: Path, *, signing_secret: str, base_url: str = "", syncfs: bool = True) -> None:
        """``syncfs``: flush each batch of stores with one ``syncfs(2)`` (``local_commit.py``)."""
        # Absolute now, so a later chdir cannot move the storage.
        self.root = Path(root).absolute()
        self._committer = local_commit.Committer(syncfs=syncfs)
        self._signing_secret = signing_secret
        self._base_url = base_url.rstrip("/")
        self._prefix = _prefix(self.root)

    async def open(self) -> None:
        def make() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._prefix = _prefix(self.root)  # resolved once: the root may be a symlink

        await asyncio.to_thread(make)

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        def writable() -> None:
            if not (self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)):
                raise OSError(f"storage directory {self.root} is missing or not writable")

        await asyncio.to_thread(writable)

    def path_for(self, key: str) -> Path:
        """The file holding ``key``, after checking the key shape and that symlinks stay in root
        (blocking: symlinks are read from disk)."""
        return Path(files.resolve(self._prefix, _checked(key)))

    async def read(self, key: str, *, max_bytes: int, check: Callable[[bytes], object] | None = None) -> bytes:
        def read(limit: int) -> bytes:
            data = files.read_limited(self._prefix, _checked(key), limit)
            if check is not None:
                check(data)
            return data

        if max_bytes > INLINE_BYTES:
            # Small objects are read and checked on the loop (cheaper than a thread's hand-off);
            # a larger one stops at its size, then goes to a thread with the caller's limit.
            with contextlib.suppress(ObjectTooLarge):
                return read(INLINE_BYTES)
            return await asyncio.to_thread(read, max_bytes)
        return read(max_bytes)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, str]) -> None:
        def fill(fd: int) -> None:
            writes.write_all(fd, data)

        await self._put(key, content_type, metadata, fill, inline=len(data) <= INLINE_BYTES)

    async def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: dict[str, str], consume: bool = False
    ) -> None:
        """Copy ``path`` in; with ``consume``, move it instead when it is a lone regular file on
        the storage's file system (still flushed to disk before it is renamed into place)."""

        def copy(fd: int) -> None:
            with open(path, "rb") as src, open(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(src, out, files.CHUNK)

        await self._put(key, content_type, metadata, copy, source=os.fspath(path) if consume else None)

    async def _put(
        self,
        key: str,
        content_type: str,
        metadata: dict[str, str],
        fill: Callable[[int], object],
        *,
        source: str | None = None,
        inline: bool = False,
    ) -> None:
        """The sidecar and the object written under temporary names, then committed. On the loop:
        the directory, the small sidecar, a moved ``source`` (a rename) or an ``inline`` fill; a
        copy goes to a thread."""
        directory, name = files.object_directory(self._prefix, _checked(key), key)
        pending = local_commit.Pending(directory, [])
        try:
            body = json.dumps({"content_type": content_type, "metadata": dict(metadata)}).encode()
            meta = writes.written_temp(directory, lambda fd: writes.write_all(fd, body))
            pending.renames.append((meta, name + META_SUFFIX))
            temp = writes.adopt(source, directory) if source else None
            if temp is None:
                temp = (
                    writes.written_temp(directory, fill)
                    if inline
                    else await local_commit.written_in_thread(pending, fill)
                )
            pending.renames.append((temp, name))
        except BaseException:
            pending.discard()
            raise
        await self._committer.commit(pending)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(lambda: os.path.isfile(self.path_for(key)))

    async def head(self, key: str) -> ObjectHead | None:
        return await asyncio.to_thread(lambda: files.head(self.path_for(key)))

    async def delete(self, key: str) -> None:
        def delete() -> None:
            path = self.path_for(key)
            _unlink_quietly(path)
            _unlink_quietly(files.meta_path(path))

        await asyncio.to_thread(delete)

    async def content_type(self, key: str) -> str | None:
        """The content type recorded at write time, or None (no sidecar, unreadable sidecar)."""

        def read() -> str | None:
            try:
                return json.loads(files.meta_path(self.path_for(key)).read_text(encoding="utf-8")).get("content_type")
            except (OSError, ValueError, AttributeError):
                return None

        return await asyncio.to_thread(read)

    async def download_url(self, key: str, *, expires_in: int) -> str:
        # Checked for shape only: the link's handler resolves the key (symlinks too) when it serves it.
        _checked(key)
        expires = int(time.time()) + int(expires_in)
        signature = sign_download(self._signing_secret, key, expires)
        return f"{self._base_url}/video-gen/files/{quote(key, safe='/')}?expires={expires}&signature={signature}"

    async def upload_url(self, key: str, *, content_type: str, content_length: int, expires_in: int) -> UploadTarget:
        _checked(key)  # shape only, like download_url: the write resolves it
        expires = int(time.time()) + int(expires_in)
        signature = sign_upload(self._signing_secret, key, content_type, content_length, expires)
        query = urlencode({"expires": expires, "type": content_type, "length": content_length, "signature": signature})
        return UploadTarget(
            f"{self._base_url}/video-gen/uploads/{quote(key, safe='/')}?{query}", "PUT", {"Content-Type": content_type}
        )


def _checked(key: str) -> str:
    """``key`` if it is well formed and does not name a sidecar or temporary file."""
    validate_key(key)
    if files.reserved(key.rpartition("/")[2]):
        raise InvalidKey(f"reserved name in key {key!r}")
    return key


def _prefix(root: Path) -> str:
    real = os.path.realpath(root)
    return real if real.endswith("/") else real + "/"


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
