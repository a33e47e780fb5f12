"""Pick the storage backend from ``STORAGE_URL``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from service.storage.base import Storage
from service.storage.local import LocalStorage
from service.storage.s3 import S3Storage

if TYPE_CHECKING:
    from service.core.settings import Settings

_EXPECTED = "expected file:///absolute/dir, file://./relative/dir or s3://bucket[/prefix]"


def storage_from_settings(settings: Settings) -> Storage:
    """Build (not open) the storage named by ``settings.storage_url``.

    ``file:///abs/dir`` and ``file://./rel/dir`` (relative to the working directory) give a
    LocalStorage whose links point at this API (``PUBLIC_URL``); ``s3://bucket[/prefix]`` gives an
    S3Storage whose presigned links name ``S3_PUBLIC_ENDPOINT_URL`` when it is set.
    """
    url = settings.storage_url.strip()
    if url.startswith("file://"):
        return LocalStorage(
            _local_root(url),
            signing_secret=settings.jwt_secret,
            base_url=settings.public_base_url,
            syncfs=settings.storage_syncfs,
        )
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"STORAGE_URL {url!r} is not a valid S3 URL; {_EXPECTED}")
        return S3Storage(
            parts.netloc,
            parts.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
            region=settings.s3_region,
            path_style=settings.s3_path_style,
        )
    raise ValueError(f"STORAGE_URL {url!r} has an unsupported scheme; {_EXPECTED}")


def _local_root(url: str) -> Path:
    # Taken literally rather than through urlsplit, which would read "." as a host name.
    rest = url[len("file://") :]
    if rest.startswith("/") or rest.startswith("./") or rest.startswith("../") or rest in (".", ".."):
        return Path(rest)
    raise ValueError(f"STORAGE_URL {url!r} is not a valid directory URL; {_EXPECTED}")
