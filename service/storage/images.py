"""Source-image checks and output keys.

The worker runs ``load_source_image`` before any credit moves, so a bad request costs nothing:
the key is well formed, belongs to the caller, exists, fits the size limit and really is an image
(magic bytes; the extension proves nothing). Another user's key fails exactly like a missing one,
so the API never reveals what exists.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import Image, UnidentifiedImageError

from service.core.errors import BadRequest, NotFound, PayloadTooLarge
from service.storage.base import InvalidKey, ObjectNotFound, ObjectTooLarge, Storage
from service.storage.keys import MAX_KEY_LENGTH, MAX_SEGMENT_BYTES, validate_key

_SAFE_CHARS = re.compile(r"[A-Za-z0-9_.-]")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # kept as it is: ids and most user ids


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
    if _SAFE_SEGMENT.fullmatch(value):
        return value
    out = []
    for index, char in enumerate(value):
        if _SAFE_CHARS.fullmatch(char) and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _bounded(segment: str) -> str:
    """A safe segment short enough for any file system: a long one keeps its start and ends with
    ``~~`` and a hash of the whole (``~~`` never occurs in ``safe_segment``'s output, so a bounded
    segment cannot equal an unbounded one)."""
    if len(segment) <= MAX_SEGMENT_BYTES - 8:  # ".mp4" and room to spare
        return segment
    digest = hashlib.sha256(segment.encode()).hexdigest()[:32]
    return f"{segment[: MAX_SEGMENT_BYTES - 8 - 34]}~~{digest}"


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
    if any(len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for segment in key.split("/")):
        raise BadRequest(f"Invalid source image key: a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    try:
        validate_key(key)
    except InvalidKey:
        raise BadRequest(f"Invalid source image key: {key}") from None
    prefix = user_prefix(user_id, prefix_template)
    if prefix is None or not key.startswith(prefix):
        raise NotFound(f"Source image not found: {key}")


# Pillow's plugin for each sniffed type: opening with only it skips asking every other plugin
# (30 against 43 us for the sample PNG, once per job).
PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def check_decodes(data: bytes, max_pixels: int, content_type: str | None = None) -> tuple[int, int]:
    """Check the image with Pillow (blocking: run it in a thread); its size, or a 400.

    The size is read from the header first, so a small file declaring a huge image is refused
    before a pixel is allocated: checking costs at most ``max_pixels`` pixels of memory. A PNG is
    verified chunk by chunk to its end (structure and every CRC: truncation and garbage are
    caught) without inflating its pixels, which cost 9 ms a job for a 720p source; other formats
    are decoded, a JPEG at 1/8 scale (every block is still read).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            formats = [PILLOW_FORMATS[content_type]] if content_type in PILLOW_FORMATS else None
            with Image.open(io.BytesIO(data), formats=formats) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadRequest(f"Source image is too large: {width}x{height} pixels (limit {max_pixels} pixels)")
                if image.format == "PNG":
                    image.verify()
                else:
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
    except Image.DecompressionBombError:  # Pillow's own ceiling, far above ours: refused at the header
        raise BadRequest(f"Source image is too large (limit {max_pixels} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"Source image could not be decoded: {_reason(exc)}") from None
    return width, height


def _reason(exc: BaseException) -> str:
    """Pillow's sentence, without reprs or paths (it is shown to the client)."""
    text = str(exc).split("\n", 1)[0]
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "the file is truncated"
    if isinstance(exc, UnidentifiedImageError):
        return "not a PNG, JPEG or WebP image"
    return re.sub(r"[<>'\"]", "", text)[:120] or type(exc).__name__


async def load_source_image(
    storage: Storage, key: str, *, user_id: str, prefix_template: str, max_bytes: int, max_pixels: int = 40_000_000
) -> CheckedImage:
    """Check and read the source image once; every failure is a client-facing AppError. The
    image is checked where it is read (one trip to a thread for a local store)."""
    check_source_key(key, user_id, prefix_template)
    types: list[str] = []  # what the check found, from the thread that ran it
    try:
        data = await storage.read(
            key, max_bytes=max_bytes, check=lambda data: types.append(check_image(data, max_pixels))
        )
    except ObjectNotFound:
        raise NotFound(f"Source image not found: {key}") from None
    except ObjectTooLarge as exc:
        raise PayloadTooLarge(f"Source image is too large: {exc.size} bytes (limit {exc.limit})") from None
    except InvalidKey:
        raise BadRequest(f"Invalid source image key: {key}") from None
    return CheckedImage(key=key, data=data, content_type=types[0])


def load_decoders() -> None:
    """Import every image decoder Pillow has, now (blocking: about 0.2 s, once per process). A
    worker calls it at start, in a thread: the first check of a small source runs on the event loop
    (``LocalStorage.read``), and would otherwise stall it for the imports (66 ms for a PNG, 170 ms for a
    WebP, measured here)."""
    Image.init()


def check_image(data: bytes, max_pixels: int) -> str:
    """The type of a PNG, JPEG or WebP image that decodes (blocking, see ``check_decodes``); a 400
    for anything else."""
    content_type = sniff_image_type(data)
    if content_type is None:
        raise BadRequest("Source image must be a PNG, JPEG or WebP image")
    check_decodes(data, max_pixels, content_type)
    return content_type


def output_key(user_id: str, generation_id: str, now: datetime) -> str:
    """``videos/{user}/{yyyy}/{mm}/{generation_id}.mp4``; the month is taken in UTC if ``now`` is aware."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    # Formatted from the numbers: strftime costs about ten times as much, once per job.
    user, generation = _bounded(safe_segment(user_id)), _bounded(safe_segment(generation_id))
    key = f"videos/{user}/{now.year:04d}/{now.month:02d}/{generation}.mp4"
    return validate_key(key)
