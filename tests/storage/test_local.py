"""LocalStorage: key containment, atomic writes, the signed links it hands out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from service.storage.base import InvalidKey, ObjectNotFound, ObjectTooLarge
from service.storage.local import LocalStorage
from service.storage.signing import verify_download_signature

SECRET = "test-signing-secret"
META = {"content_type": "video/mp4", "metadata": {}}

TRAVERSAL_KEYS = [
    "../x",
    "a/../../x",
    "a/..",
    "/etc/passwd",
    "%2e%2e/x",
    "%2E%2E/x",
    "a%2fb",
    "a%2Fb",
    "a%5cb",
    "%252e%252e/x",
    "a\x00b",
    "a\\b",
    "..\\x",
    "",
    "a//b",
    "a/",
    "./a",
    "a\nb",
    "video.mp4.meta.json",
    "x" * 1025,
]


@pytest.fixture
async def storage(scratch: Path) -> LocalStorage:
    store = LocalStorage(scratch / "root", signing_secret=SECRET, base_url="http://api.test")
    await store.open()
    return store


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("key", TRAVERSAL_KEYS)
async def test_malformed_and_traversal_keys_are_refused_everywhere(storage: LocalStorage, scratch: Path, key: str):
    before = tree(scratch)
    with pytest.raises(InvalidKey):
        await storage.put_bytes(key, b"evil", **META)
    with pytest.raises(InvalidKey):
        await storage.read(key, max_bytes=100)
    with pytest.raises(InvalidKey):
        await storage.exists(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.download_url(key, expires_in=60)
    assert tree(scratch) == before


async def test_symlink_pointing_outside_root_is_refused(storage: LocalStorage, scratch: Path):
    outside = scratch / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    (storage.root / "file-link").symlink_to(outside / "secret.txt")

    for key in ("link/secret.txt", "file-link"):
        with pytest.raises(InvalidKey):
            await storage.read(key, max_bytes=100)
    with pytest.raises(InvalidKey):
        await storage.put_bytes("link/new.txt", b"x", **META)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_symlink_inside_root_is_allowed(storage: LocalStorage):
    (storage.root / "real").mkdir()
    (storage.root / "real" / "a.txt").write_bytes(b"hello")
    (storage.root / "alias").symlink_to(storage.root / "real", target_is_directory=True)
    assert await storage.read("alias/a.txt", max_bytes=100) == b"hello"
    await storage.put_bytes("v.mp4", b"v", **META)
    (storage.root / "sidecar-alias").symlink_to(storage.root / "v.mp4.meta.json")
    with pytest.raises(InvalidKey):
        await storage.read("sidecar-alias", max_bytes=100)


async def test_put_bytes_then_read_exists_and_content_type(storage: LocalStorage):
    await storage.put_bytes("videos/u1/a.mp4", b"movie", content_type="video/mp4", metadata={"k": "v"})
    assert await storage.read("videos/u1/a.mp4", max_bytes=5) == b"movie"
    assert await storage.exists("videos/u1/a.mp4")
    assert await storage.content_type("videos/u1/a.mp4") == "video/mp4"
    assert tree(storage.root / "videos" / "u1") == ["a.mp4", "a.mp4.meta.json"]


async def test_read_missing_directory_and_too_large(storage: LocalStorage):
    with pytest.raises(ObjectNotFound):
        await storage.read("nope.bin", max_bytes=10)
    await storage.put_bytes("dir/a.bin", b"x", **META)
    with pytest.raises(ObjectNotFound):
        await storage.read("dir", max_bytes=10)
    with pytest.raises(ObjectNotFound):
        await storage.read("dir/a.bin/below", max_bytes=10)
    await storage.put_bytes("big.bin", b"0123456789", **META)
    with pytest.raises(ObjectTooLarge) as info:
        await storage.read("big.bin", max_bytes=9)
    assert (info.value.size, info.value.limit) == (10, 9)


async def test_delete_removes_object_and_sidecar_and_tolerates_missing(storage: LocalStorage):
    await storage.put_bytes("a/b.bin", b"x", **META)
    await storage.delete("a/b.bin")
    await storage.delete("a/b.bin")
    assert not await storage.exists("a/b.bin")
    assert tree(storage.root / "a") == []


async def test_put_file_copies_and_overwrites_atomically(storage: LocalStorage, scratch: Path):
    source = scratch / "source.bin"
    payload = os.urandom(3 * 1024 * 1024 + 7)
    source.write_bytes(payload)
    await storage.put_bytes("v/out.mp4", b"old", **META)
    await storage.put_file("v/out.mp4", source, content_type="video/mp4", metadata={"job": "1"})
    assert await storage.read("v/out.mp4", max_bytes=len(payload)) == payload
    assert tree(storage.root / "v") == ["out.mp4", "out.mp4.meta.json"]


async def test_failed_write_keeps_old_content_and_leaves_no_temp_file(
    storage: LocalStorage, scratch: Path, monkeypatch: pytest.MonkeyPatch
):
    await storage.put_bytes("v/out.mp4", b"old", **META)

    def half_copy(src, dst, length=0):
        dst.write(src.read(10))
        raise OSError("disk full")

    source = scratch / "source.bin"
    source.write_bytes(b"n" * 100)
    monkeypatch.setattr(shutil, "copyfileobj", half_copy)
    with pytest.raises(OSError, match="disk full"):
        await storage.put_file("v/out.mp4", source, **META)
    with pytest.raises(FileNotFoundError):
        await storage.put_file("v/out.mp4", scratch / "missing.bin", **META)
    assert await storage.read("v/out.mp4", max_bytes=100) == b"old"
    assert tree(storage.root / "v") == ["out.mp4", "out.mp4.meta.json"]


async def test_download_url_is_signed_and_verifiable(storage: LocalStorage):
    await storage.put_bytes("videos/u1/a b.mp4", b"x", **META)
    url = await storage.download_url("videos/u1/a b.mp4", expires_in=60)
    parts = urlsplit(url)
    assert url.startswith("http://api.test/video-gen/files/videos/u1/a%20b.mp4?")
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    expires, signature = int(query["expires"]), query["signature"]
    assert len(signature) == 64
    assert verify_download_signature(SECRET, "videos/u1/a b.mp4", expires, signature)
    assert verify_download_signature(SECRET, "videos/u1/a b.mp4", str(expires), signature, now=expires)
    assert not verify_download_signature(SECRET, "videos/u1/a b.mp4", expires, signature, now=expires + 1)
    assert not verify_download_signature(SECRET, "videos/u1/other.mp4", expires, signature)
    assert not verify_download_signature(SECRET, "videos/u1/a b.mp4", expires + 1, signature)
    assert not verify_download_signature("another-secret", "videos/u1/a b.mp4", expires, signature)
    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert not verify_download_signature(SECRET, "videos/u1/a b.mp4", expires, tampered)
