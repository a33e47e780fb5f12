"""Workdirs: private directories for model runs, reused when left empty, removed when not."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import stat
from pathlib import Path

from service.generations.workdirs import Workdirs


async def test_an_empty_workdir_is_reused_and_a_busy_one_is_not_shared(scratch: Path):
    dirs = Workdirs(str(scratch))
    async with dirs.lease() as first:
        async with dirs.lease() as second:
            assert first != second  # two jobs at once never share one
            assert first.parent == second.parent
    async with dirs.lease() as again:
        assert again in (first, second)
    assert len(list(first.parent.iterdir())) == 2


async def test_the_root_is_private(scratch: Path):
    dirs = Workdirs(str(scratch))
    async with dirs.lease() as path:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    dirs.close()


async def test_a_workdir_left_with_files_is_removed_and_never_handed_out_again(scratch: Path):
    dirs = Workdirs(str(scratch))
    async with dirs.lease() as path:
        (path / "leftover.mp4").write_bytes(b"x")
        (path / "sub").mkdir()
    assert not path.exists()
    async with dirs.lease() as fresh:
        assert fresh != path and list(fresh.iterdir()) == []


async def test_a_workdir_is_released_when_the_job_fails_or_is_cancelled(scratch: Path):
    dirs = Workdirs(str(scratch))
    try:
        async with dirs.lease() as failed:
            raise RuntimeError("the model broke")
    except RuntimeError:
        pass

    assert failed.is_dir()  # left empty: kept for the next job

    async def held(entered: asyncio.Event) -> None:
        async with dirs.lease() as path:
            assert path == failed
            (path / "partial.mp4").write_bytes(b"x")
            entered.set()
            await asyncio.sleep(60)

    entered = asyncio.Event()
    task = asyncio.create_task(held(entered))
    await entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not failed.exists()  # cancelled with a partial video in it: removed
    assert list(failed.parent.iterdir()) == []


async def test_close_removes_everything_and_a_removed_root_is_made_again(scratch: Path):
    dirs = Workdirs(str(scratch))
    async with dirs.lease() as path:
        pass
    shutil.rmtree(path.parent)  # a temp cleaner removed it between two jobs
    async with dirs.lease() as fresh:
        assert fresh.is_dir() and fresh.parent != path.parent
    dirs.close()
    assert os.listdir(scratch) == []


async def test_the_root_goes_with_its_workdirs_object(scratch: Path):
    dirs = Workdirs(str(scratch))
    async with dirs.lease():
        pass
    assert len(os.listdir(scratch)) == 1
    del dirs
    gc.collect()
    assert os.listdir(scratch) == []  # a task never closed (tests, embedded stacks) leaves nothing
