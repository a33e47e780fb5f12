"""Source-image checks and output keys.

The worker runs ``load_source_image`` before any credit moves, so a bad request costs nothing:
the key is well formed, belongs to the caller, exists, fits the size limit and really is an image
(magic bytes; the extension proves nothing). Another user's key fails exactly like a missing one,
so the API never reveals what exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from service.core.errors import BadRequest, NotFound, PayloadTooLarge
from service.storage.base import InvalidKey, ObjectNotFound, ObjectTooLarge, Storage
from service.storage.local import MAX_KEY_LENGTH, validate_key

_SAFE_CHARS = re.compile(r"[A-Za-z0-9_.-]")


@dataclass(frozen=True)
class CheckedImage:
    """A source image that passed every check, read once."""

    key: str
    data: bytes
    content_type: str  # image/png, image/jpeg or image/webp, sniffed from the bytes


def sniff_image_type(data: bytes) -> str | None:
    """The image MIME type from the magic bytes (PNG, JPEG, WebP), or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def safe_segment(value: str) -> str:
    """``value`` as one safe key segment; injective, so two users never share a folder.

    Letters, digits, ``_``, ``-`` and inner dots are kept; every other UTF-8 byte becomes ``~XX``
    (``~`` itself is encoded, which keeps the mapping one-to-one); a leading dot is encoded so the
    result is never ``.``, ``..`` or hidden; the empty string becomes ``~``.
    """
    if not value:
        return "~"
    out = []
    for index, char in enumerate(value):
        if _SAFE_CHARS.fullmatch(char) and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def user_prefix(user_id: str, prefix_template: str) -> str | None:
    """The prefix a user's source keys must start with: "" when the rule is disabled, None when
    ``user_id`` is not a single clean segment (with a ``/`` it could reach into another user's
    folder), in which case nothing matches."""
    if not prefix_template:
        return ""
    try:
        validate_key(user_id)
    except InvalidKey:
        return None
    if "/" in user_id:
        return None
    try:
        return prefix_template.format(user_id=user_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"SOURCE_KEY_PREFIX {prefix_template!r} may only use {{user_id}}") from exc


def check_source_key(key: str, user_id: str, prefix_template: str) -> None:
    """Refuse malformed keys (BadRequest) and other users' keys (NotFound, like a missing one)."""
    if not key:
        raise BadRequest("Invalid source image key: the key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"Invalid source image key: longer than {MAX_KEY_LENGTH} characters")
    try:
        validate_key(key)
    except InvalidKey:
        raise BadRequest(f"Invalid source image key: {key}") from None
    prefix = user_prefix(user_id, prefix_template)
    if prefix is None or not key.startswith(prefix):
        raise NotFound(f"Source image not found: {key}")


async def load_source_image(
    storage: Storage, key: str, *, user_id: str, prefix_template: str, max_bytes: int
) -> CheckedImage:
    """Check and read the source image once; every failure is a client-facing AppError."""
    check_source_key(key, user_id, prefix_template)
    try:
        data = await storage.read(key, max_bytes=max_bytes)
    except ObjectNotFound:
        raise NotFound(f"Source image not found: {key}") from None
    except ObjectTooLarge as exc:
        raise PayloadTooLarge(f"Source image is too large: {exc.size} bytes (limit {exc.limit})") from None
    except InvalidKey:
        raise BadRequest(f"Invalid source image key: {key}") from None
    content_type = sniff_image_type(data)
    if content_type is None:
        raise BadRequest("Source image must be a PNG, JPEG or WebP image")
    return CheckedImage(key=key, data=data, content_type=content_type)


def output_key(user_id: str, generation_id: str, now: datetime) -> str:
    """``videos/{user}/{yyyy}/{mm}/{generation_id}.mp4``; the month is taken in UTC if ``now`` is aware."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    key = f"videos/{safe_segment(user_id)}/{now:%Y}/{now:%m}/{safe_segment(generation_id)}.mp4"
    return validate_key(key)
