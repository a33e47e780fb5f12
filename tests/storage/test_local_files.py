"""The local store's file work: symlink escapes refused with or without /proc, writes still flushed
(``test_local_commit.py`` tests the batches), and a consumed file moved into place only when nothing
else can reach it."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from service.storage import local_files
from service.storage.base import InvalidKey, ObjectNotFound
from service.storage.local import INLINE_BYTES, LocalStorage
from tests.storage.test_local_commit import watch_syncfs

META = {"content_type": "video/mp4", "metadata": {"job": "1"}}


@pytest.fixture(params=[True, False], ids=["proc-fd", "realpath-only"])
async def storage(request: pytest.FixtureRequest, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    """A local store, checked through /proc/self/fd and, again, as on a system without it."""
    monkeypatch.setattr(local_files, "_HAS_PROC_FD", request.param and local_files._HAS_PROC_FD)
    store = LocalStorage(scratch / "root", signing_secret="s", base_url="http://api.test")
    await store.open()
    return store


@pytest.fixture
def outside(scratch: Path) -> Path:
    path = scratch / "outside"
    path.mkdir()
    (path / "secret.txt").write_bytes(b"secret")
    return path


def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors synced from now on (the real fsync still runs)."""
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


async def test_escaping_directory_link_is_refused_before_anything_is_made(storage: LocalStorage, outside: Path):
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    (storage.root / "v").mkdir()
    (storage.root / "v" / "deep").symlink_to(outside, target_is_directory=True)
    for key in ("link/missing.txt", "link/secret.txt", "v/deep/secret.txt"):
        with pytest.raises(InvalidKey):
            await storage.read(key, max_bytes=100)
    for key in ("link/new/dir/a.bin", "link/a.bin", "v/deep/a.bin", "link/secret.txt"):
        with pytest.raises(InvalidKey):
            await storage.put_bytes(key, b"x", **META)
    assert os.listdir(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"


async def test_object_link_is_written_where_it_points_inside_only(storage: LocalStorage, outside: Path):
    await storage.put_bytes("real/a.bin", b"old", **META)
    (storage.root / "alias.bin").symlink_to(storage.root / "real" / "a.bin")
    (storage.root / "escape.bin").symlink_to(outside / "secret.txt")
    (storage.root / "to-root").symlink_to(storage.root, target_is_directory=True)
    await storage.put_bytes("alias.bin", b"new", **META)
    assert (storage.root / "alias.bin").is_symlink()
    assert await storage.read("real/a.bin", max_bytes=10) == b"new"
    for key in ("escape.bin", "to-root"):
        with pytest.raises(InvalidKey):
            await storage.put_bytes(key, b"x", **META)
        with pytest.raises(InvalidKey):
            await storage.read(key, max_bytes=10)
    assert (outside / "secret.txt").read_bytes() == b"secret"


async def test_links_to_temporary_files_are_not_objects(storage: LocalStorage):
    (storage.root / ".vg-tmp-leftover").write_bytes(b"half")
    (storage.root / "tmp-alias").symlink_to(storage.root / ".vg-tmp-leftover")
    (storage.root / "dir-alias").symlink_to(storage.root, target_is_directory=True)
    for key in ("tmp-alias", "dir-alias/tmp-alias"):  # also through a directory link
        with pytest.raises(InvalidKey):
            await storage.read(key, max_bytes=10)
        with pytest.raises(InvalidKey):
            await storage.put_bytes(key, b"x", **META)
    assert (storage.root / ".vg-tmp-leftover").read_bytes() == b"half"


async def test_a_fifo_is_not_an_object_and_does_not_block(storage: LocalStorage):
    os.mkfifo(storage.root / "pipe")
    with pytest.raises(ObjectNotFound):
        await storage.read("pipe", max_bytes=10)


async def test_a_write_flushes_its_files_then_its_renames(storage: LocalStorage, monkeypatch: pytest.MonkeyPatch):
    calls, synced = watch_syncfs(storage), count_fsyncs(monkeypatch)
    await storage.put_bytes("v/a.bin", b"data", **META)
    assert (len(calls), synced) == (2, [])  # the new files, then both renames: the file system twice
    assert (await storage.head("v/a.bin")).metadata == {"job": "1"}


async def test_without_syncfs_a_write_fsyncs_both_files_and_the_directory(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
):
    storage = LocalStorage(scratch / "fsync-root", signing_secret="s", syncfs=False)
    await storage.open()
    synced = count_fsyncs(monkeypatch)
    await storage.put_bytes("v/a.bin", b"data", **META)
    assert len(synced) == 3  # the sidecar, the object, the directory (both renames)
    assert (await storage.head("v/a.bin")).metadata == {"job": "1"}
    assert sorted(p.name for p in (storage.root / "v").iterdir()) == ["a.bin", "a.bin.meta.json"]


async def test_a_consumed_file_is_moved_into_place_flushed(storage: LocalStorage, scratch: Path):
    source = scratch / "work" / "out.mp4"
    source.parent.mkdir()
    source.write_bytes(b"video")
    inode = source.stat().st_ino
    calls = watch_syncfs(storage)
    await storage.put_file("videos/u1/a.mp4", source, consume=True, **META)
    stored = storage.root / "videos" / "u1" / "a.mp4"
    assert not source.exists()
    assert (stored.stat().st_ino, stored.read_bytes()) == (inode, b"video")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600  # like a copy made by the store
    assert len(calls) == 2  # the moved file and the sidecar, then the renames
    assert sorted(p.name for p in stored.parent.iterdir()) == ["a.mp4", "a.mp4.meta.json"]


async def test_a_file_not_given_away_is_copied(storage: LocalStorage, scratch: Path):
    source = scratch / "out.mp4"
    source.write_bytes(b"video")
    await storage.put_file("a.mp4", source, **META)
    assert source.read_bytes() == b"video"
    assert (storage.root / "a.mp4").stat().st_ino != source.stat().st_ino


async def test_a_shared_or_linked_file_is_copied_even_when_consumed(storage: LocalStorage, scratch: Path):
    cache = scratch / "cache.mp4"
    cache.write_bytes(b"cached")
    hard, soft = scratch / "hard.mp4", scratch / "soft.mp4"
    os.link(cache, hard)
    soft.symlink_to(cache)
    await storage.put_file("hard.mp4", hard, consume=True, **META)
    await storage.put_file("soft.mp4", soft, consume=True, **META)
    assert cache.read_bytes() == b"cached" and hard.exists() and soft.is_symlink()
    for key in ("hard.mp4", "soft.mp4"):
        assert (storage.root / key).stat().st_ino != cache.stat().st_ino
        assert await storage.read(key, max_bytes=10) == b"cached"


async def test_another_mount_falls_back_to_a_copy(
    storage: LocalStorage, scratch: Path, monkeypatch: pytest.MonkeyPatch
):
    source = scratch / "out.mp4"
    source.write_bytes(b"video")
    real_rename = os.rename

    def cross_device(src: str, dst: str, **kwargs: object) -> None:
        if os.fspath(src) == str(source):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", cross_device)
    await storage.put_file("a.mp4", source, consume=True, **META)
    assert await storage.read("a.mp4", max_bytes=10) == b"video"
    assert sorted(p.name for p in storage.root.iterdir()) == ["a.mp4", "a.mp4.meta.json"]


async def test_the_read_check_runs_where_the_read_does_and_can_refuse(storage: LocalStorage):
    large = b"x" * (INLINE_BYTES + 1)
    await storage.put_bytes("a.bin", b"data", **META)
    await storage.put_bytes("large.bin", large, **META)
    seen: list[tuple[bytes, int]] = []
    data = await storage.read("a.bin", max_bytes=10, check=lambda d: seen.append((d, threading.get_ident())))
    assert data == b"data" and seen == [(b"data", threading.get_ident())]  # small: on the loop
    seen.clear()
    data = await storage.read(
        "large.bin", max_bytes=len(large), check=lambda d: seen.append((d, threading.get_ident()))
    )
    assert data == large and seen[0][0] == large and seen[0][1] != threading.get_ident()  # in a thread

    def refuse(data: bytes) -> None:
        raise ValueError("not an image")

    with pytest.raises(ValueError, match="not an image"):
        await storage.read("a.bin", max_bytes=10, check=refuse)
