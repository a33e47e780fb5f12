"""The local storage's signed links: garbage in a link is refused, never an error."""

from __future__ import annotations

import pytest

from service.storage.signing import verify_download_signature

SECRET = "test-signing-secret"


@pytest.mark.parametrize(
    ("expires", "signature"), [(None, "ab"), ("soon", "ab"), ("99999999999", None), ("99999999999", "é")]
)
def test_verify_rejects_missing_or_garbage_input(expires, signature):
    assert not verify_download_signature(SECRET, "a.mp4", expires, signature)
