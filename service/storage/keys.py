"""Object keys: the one shape every storage backend accepts, checked before any backend sees a key."""

from __future__ import annotations

import re

from service.storage.base import InvalidKey

MAX_KEY_LENGTH = 1024
# One segment of a key, in UTF-8 bytes: the file system's 255 less room for ``.meta.json`` and
# temporary names, so a local store never meets ENAMETOOLONG (S3 has the same rule, for one rule).
MAX_SEGMENT_BYTES = 200
# Encoded dot, slash, backslash, NUL and percent (double encoding): a key holding one of them is
# either an attack or a client bug, and some layer (proxy, S3 console) might decode it.
_ENCODED_TRAVERSAL = re.compile(r"%(2e|2f|5c|00|25)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_key(key: str) -> str:
    """Check the shape of an object key (shared by every backend); return it or raise InvalidKey.

    Keys are relative, ``/``-separated, with no empty, ``.`` or ``..`` segment, no backslash, no
    control character and no percent-encoded traversal, so no backend can resolve them elsewhere.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("empty key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key longer than {MAX_KEY_LENGTH} characters")
    if _CONTROL.search(key):
        raise InvalidKey(f"control character in key {key!r}")
    if "\\" in key:
        raise InvalidKey(f"backslash in key {key!r}")
    if key.startswith("/"):
        raise InvalidKey(f"absolute key {key!r}")
    if _ENCODED_TRAVERSAL.search(key):
        raise InvalidKey(f"percent-encoded separator or dot in key {key!r}")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise InvalidKey(f"empty, '.' or '..' segment in key {key!r}")
    if any(len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for segment in segments):
        raise InvalidKey(f"a segment of the key is longer than {MAX_SEGMENT_BYTES} bytes")
    return key
