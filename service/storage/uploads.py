"""Uploads of source images: ``POST /video-gen/uploads`` hands out a short-lived upload URL.

The key is generated under the caller's own prefix (``SOURCE_KEY_PREFIX``, ``images/<user>/``),
so the returned ``id`` is a valid ``id`` for ``POST /video-gen/image-to-video`` as soon as the
upload is done. Only PNG, JPEG and WebP, at most ``MAX_SOURCE_BYTES``: the declared type and
exact size are covered by the URL's signature (S3 refuses another ``Content-Type`` or
``Content-Length``; the local upload handler checks both, and the bytes' own type). The worker
checks the image again before any credit moves, as for any source.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from service.core.errors import BadRequest, Forbidden, PayloadTooLarge
from service.core.pagination import iso
from service.storage.base import Storage
from service.storage.images import sniff_image_type, user_prefix
from service.storage.signing import verify_upload_signature

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
ALLOWED_FIELDS = ("contentType", "contentLength")


class UploadRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    content_type: str
    """``image/png``, ``image/jpeg`` or ``image/webp``."""
    content_length: int
    """The file's exact size in bytes, at most ``MAX_SOURCE_BYTES``."""


class UploadOut(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    """The key the image will have: the ``id`` of ``POST /video-gen/image-to-video``."""
    upload_url: str
    method: str
    """``PUT``: send the file as the body."""
    headers: dict[str, str]
    """Send exactly these headers (the signature covers them)."""
    expires_at: str


class Uploaded(msgspec.Struct, kw_only=True):
    id: str


def upload_messages(body: Any, max_bytes: int) -> list[str]:
    """Every validation message for an upload request, in class-validator's words."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    messages = [f"property {key} should not exist" for key in body if key not in ALLOWED_FIELDS]
    if body.get("contentType") not in EXTENSIONS:
        messages.append(f"contentType must be one of the following values: {', '.join(EXTENSIONS)}")
    length = body.get("contentLength")
    if not isinstance(length, int) or isinstance(length, bool):
        messages.append("contentLength must be an integer number")
    elif length < 1:
        messages.append("contentLength must be a positive number")
    elif length > max_bytes:
        messages.append(f"contentLength must not be greater than {max_bytes}")
    return messages


async def new_upload(
    storage: Storage, user_id: str, request: UploadRequest, *, prefix_template: str, expires_in: int
) -> UploadOut:
    """A fresh key under the caller's prefix and the URL that uploads the image there."""
    prefix = user_prefix(user_id, prefix_template)
    if prefix is None:
        raise BadRequest("This user id cannot own source images")
    key = f"{prefix or f'uploads/{uuid.uuid4().hex[:8]}/'}{uuid.uuid4().hex}{EXTENSIONS[request.content_type]}"
    target = await storage.upload_url(
        key, content_type=request.content_type, content_length=request.content_length, expires_in=expires_in
    )
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in)
    return UploadOut(
        id=key, upload_url=target.url, method=target.method, headers=target.headers, expires_at=iso(expires_at) or ""
    )


async def receive_upload(
    storage: Storage,
    secret: str,
    key: str,
    *,
    query: dict[str, str | None],
    content_type: str | None,
    body: AsyncIterator[bytes],
) -> Uploaded:
    """Store a local upload made through a link from ``new_upload`` (403 for a bad or expired link)."""
    declared, signature = query.get("type") or "", query.get("signature") or ""
    try:
        length, expires = int(query.get("length") or ""), int(query.get("expires") or "")
    except ValueError:
        raise Forbidden("Invalid or expired upload link") from None
    if not verify_upload_signature(secret, key, declared, length, expires, signature):
        raise Forbidden("Invalid or expired upload link")
    if (content_type or "").split(";", 1)[0].strip().lower() != declared:
        raise BadRequest(f"Content-Type must be {declared}")
    data = bytearray()
    async for chunk in body:
        data += chunk
        if len(data) > length:
            raise PayloadTooLarge(f"The upload must be exactly {length} bytes")
    if len(data) != length:
        raise BadRequest(f"The upload must be exactly {length} bytes")
    if sniff_image_type(bytes(data)) != declared:
        raise BadRequest(f"The upload is not a {declared} image")
    await storage.put_bytes(key, bytes(data), content_type=declared, metadata={})
    return Uploaded(id=key)
