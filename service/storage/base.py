"""One storage interface, two backends (local directory, S3).

The rest of the code holds a ``Storage`` and never knows which backend it has; ``storage_from_settings``
picks one from ``STORAGE_URL``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredObject:
    key: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class ObjectHead:
    """What a store says of an object without reading it."""

    size: int
    content_type: str | None
    metadata: dict[str, str]


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client uploads one object: send ``method`` to ``url`` with ``headers``."""

    url: str
    method: str
    headers: dict[str, str]


@runtime_checkable
class Storage(Protocol):
    """Object storage keyed by S3-style keys (``images/u1/a.png``)."""

    async def open(self) -> None:
        """Acquire clients/sessions for the process lifespan."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Raise unless the bucket (or directory) can be reached and written: readiness."""

    async def read(self, key: str, *, max_bytes: int, check: Callable[[bytes], object] | None = None) -> bytes:
        """Read an object whole. Raises ``ObjectNotFound`` or ``ObjectTooLarge`` (checked
        against the size *before* reading the body when the backend can tell). ``check``, a
        blocking function (a decode), gets the bytes in a worker thread before they are returned,
        what it raises propagates: the local store runs it in the thread that read the file."""

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, str]) -> None: ...

    async def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: dict[str, str], consume: bool = False
    ) -> None:
        """Upload a file, streaming it (multipart on S3); no partial object is left on failure.
        ``consume``: the caller is done with the file, which may be moved into place instead of
        copied (the local store does so on its own file system) and so be gone afterwards."""

    async def exists(self, key: str) -> bool: ...

    async def head(self, key: str) -> ObjectHead | None:
        """Size, content type and metadata of ``key``; None when there is no such object."""

    async def delete(self, key: str) -> None: ...

    async def download_url(self, key: str, *, expires_in: int) -> str:
        """A short-lived URL that downloads ``key`` (presigned on S3, signed API link locally)."""

    async def upload_url(self, key: str, *, content_type: str, content_length: int, expires_in: int) -> UploadTarget:
        """A short-lived URL that stores exactly ``content_length`` bytes of ``content_type`` at
        ``key``: on S3 a presigned PUT whose signature covers both headers, locally a signed link
        to the API, which checks both."""


class ObjectNotFound(Exception):
    """The key does not exist in the storage."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class ObjectTooLarge(Exception):
    """The object is larger than the caller's limit."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"{key}: {size} bytes > {limit}")
        self.key, self.size, self.limit = key, size, limit


class InvalidKey(ValueError):
    """The key is malformed or would resolve outside the bucket/directory."""
