"""Production.store and the workdir: a video the model left in its workdir is given to the storage
(moved into place by a local one), any other file is copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models_registry.base import GeneratedVideo
from service.generations.production import Production
from service.storage.local import LocalStorage
from tests.factories import job_message


class Recorder(LocalStorage):
    """A local store that notes how each file was handed to it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, signing_secret="s")
        self.consumed: list[bool] = []

    async def put_file(self, key: str, path: Path, **options: Any) -> None:
        self.consumed.append(options.get("consume", False))
        await super().put_file(key, path, **options)


@pytest.fixture
async def storage(scratch: Path) -> Recorder:
    store = Recorder(scratch / "root")
    await store.open()
    return store


def production(storage: Recorder) -> Production:
    return Production(storage, fault=lambda point, job_id: None)


async def test_the_models_file_in_its_workdir_is_moved_and_the_workdir_kept_for_the_next_job(storage: Recorder):
    job, made = job_message(), production(storage)
    async with made.workdirs.lease() as tmp:
        (tmp / "out.mp4").write_bytes(b"video")
        await made.store("videos/u1/a.mp4", job, GeneratedVideo(tmp / "out.mp4", 1.0), tmp)
        assert not (tmp / "out.mp4").exists()
    async with made.workdirs.lease() as again:
        assert again == tmp and list(again.iterdir()) == []
    made.workdirs.close()
    assert not tmp.exists()
    assert storage.consumed == [True]
    assert await storage.read("videos/u1/a.mp4", max_bytes=10) == b"video"
    assert (await storage.head("videos/u1/a.mp4")).metadata["generation-id"] == job.job_id


async def test_files_elsewhere_are_copied(storage: Recorder, scratch: Path):
    job, made = job_message(), production(storage)
    cache = scratch / "cache.mp4"
    cache.write_bytes(b"cached")
    async with made.workdirs.lease() as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "out.mp4").write_bytes(b"nested")
        store = made.store
        await store("videos/u1/cache.mp4", job, GeneratedVideo(cache, 1.0), tmp)
        await store("videos/u1/nested.mp4", job, GeneratedVideo(tmp / "sub" / "out.mp4", 1.0), tmp)
        await store("videos/u1/no-workdir.mp4", job, GeneratedVideo(cache, 1.0))
        assert (tmp / "sub" / "out.mp4").exists()
    assert not tmp.exists()  # removed with what the model left in it
    assert storage.consumed == [False, False, False]
    assert cache.read_bytes() == b"cached"
    assert await storage.read("videos/u1/nested.mp4", max_bytes=10) == b"nested"
