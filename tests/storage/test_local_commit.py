"""The local store's group commit: the stores of a moment flushed together, each failing alone, and
nothing left behind by a failed or cancelled store."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading
from pathlib import Path

import pytest

from service.storage.local import LocalStorage

META = {"content_type": "video/mp4", "metadata": {"job": "1"}}


@pytest.fixture
async def storage(scratch: Path) -> LocalStorage:
    store = LocalStorage(scratch / "root", signing_secret="s")
    await store.open()
    return store


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def watch_syncfs(storage: LocalStorage, before=None) -> list[int]:
    """Count ``storage``'s syncfs calls; ``before(n)`` runs first on the n-th (from 0)."""
    calls: list[int] = []
    real = storage._committer.syncfs
    assert real is not None, "syncfs(2) is expected on the Linux machines the tests run on"

    def syncfs(fd: int) -> int:
        if before is not None:
            before(len(calls))
        calls.append(fd)
        return real(fd)

    storage._committer.syncfs = syncfs
    return calls


async def test_stores_of_the_same_moment_are_flushed_together(storage: LocalStorage):
    calls = watch_syncfs(storage)
    await asyncio.gather(*(storage.put_bytes(f"v/{i}.bin", bytes([i]) * 10, **META) for i in range(10)))
    assert len(calls) == 2  # one batch: its files, then its renames
    for i in range(10):
        assert await storage.read(f"v/{i}.bin", max_bytes=100) == bytes([i]) * 10
    assert files_in(storage.root / "v") == sorted(
        [f"{i}.bin" for i in range(10)] + [f"{i}.bin.meta.json" for i in range(10)]
    )


async def test_a_rename_that_fails_fails_its_own_store_only(storage: LocalStorage, monkeypatch: pytest.MonkeyPatch):
    await storage.put_bytes("v/bad.bin", b"old", **META)
    real = os.replace

    def replace(src, dst, **kwargs):
        if dst == "bad.bin":
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    results = await asyncio.gather(
        storage.put_bytes("v/good.bin", b"good", **META),
        storage.put_bytes("v/bad.bin", b"new", **META),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], OSError)
    assert await storage.read("v/good.bin", max_bytes=10) == b"good"
    assert await storage.read("v/bad.bin", max_bytes=10) == b"old"
    assert files_in(storage.root / "v") == ["bad.bin", "bad.bin.meta.json", "good.bin", "good.bin.meta.json"]


async def test_a_failed_flush_fails_the_batch_and_leaves_the_old_objects(storage: LocalStorage):
    await storage.put_bytes("v/a.bin", b"old", **META)
    storage._committer.syncfs = lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error"))
    results = await asyncio.gather(
        storage.put_bytes("v/a.bin", b"new", **META),
        storage.put_bytes("v/b.bin", b"new", **META),
        return_exceptions=True,
    )
    assert all(isinstance(r, OSError) and r.errno == errno.EIO for r in results)
    assert (storage.root / "v" / "a.bin").read_bytes() == b"old"
    assert files_in(storage.root / "v") == ["a.bin", "a.bin.meta.json"]  # no temporary file left


async def test_a_store_cancelled_while_it_waits_for_a_batch_leaves_nothing(storage: LocalStorage):
    in_flush, release = threading.Event(), threading.Event()

    def hold_first_batch(n: int) -> None:
        if n == 0:
            in_flush.set()
            release.wait(10)

    watch_syncfs(storage, hold_first_batch)
    first = asyncio.create_task(storage.put_bytes("v/first.bin", b"1", **META))
    await asyncio.to_thread(in_flush.wait, 10)
    second = asyncio.create_task(storage.put_bytes("v/second.bin", b"2", **META))
    await asyncio.sleep(0.05)  # its files are written, it waits for the batch in flight
    assert any(name.startswith(".vg-tmp-") for name in files_in(storage.root / "v"))
    second.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert files_in(storage.root / "v") == ["first.bin", "first.bin.meta.json"]


async def test_a_store_cancelled_while_it_copies_waits_for_the_copy_and_leaves_nothing(
    storage: LocalStorage, scratch: Path, monkeypatch: pytest.MonkeyPatch
):
    source = scratch / "out.mp4"
    source.write_bytes(b"video")
    copying, release = threading.Event(), threading.Event()
    real = shutil.copyfileobj

    def slow_copy(src, dst, length=0):
        copying.set()
        release.wait(10)
        real(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", slow_copy)
    store = asyncio.create_task(storage.put_file("v/a.mp4", source, **META))
    await asyncio.to_thread(copying.wait, 10)
    store.cancel()
    await asyncio.sleep(0.05)
    assert not store.done()  # the copy writes through the directory's descriptor: waited for
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await store
    assert files_in(storage.root / "v") == []
    assert source.read_bytes() == b"video"
