"""Signed links of the local storage: an HMAC over what a download or an upload may do, until when.

The API checks them (``endpoints.py`` for downloads, ``uploads.py`` for uploads); S3 signs its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def sign_download(secret: str, key: str, expires: int) -> str:
    """Hex HMAC-SHA256 of the key and expiry; the newline cannot occur in a valid key."""
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_download_signature(
    secret: str, key: str, expires: int | str | None, signature: str | None, now: float | None = None
) -> bool:
    """True when ``signature`` was made by ``sign_download`` for this key and has not expired."""
    if not signature or expires is None:
        return False
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_at < (time.time() if now is None else now):
        return False
    expected = sign_download(secret, key, expires_at).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def sign_upload(secret: str, key: str, content_type: str, length: int, expires: int) -> str:
    """Hex HMAC-SHA256 of an upload's key, type, size and expiry (distinct from a download's)."""
    message = f"upload\n{key}\n{content_type}\n{length}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_upload_signature(
    secret: str, key: str, content_type: str, length: int, expires: int, signature: str, now: float | None = None
) -> bool:
    """True when ``signature`` was made by ``sign_upload`` for exactly these and has not expired."""
    if expires < (time.time() if now is None else now):
        return False
    expected = sign_upload(secret, key, content_type, length, expires).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
