"""Workdirs: private directories for model runs, reused when left empty, removed when not."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from service.generations import workdirs
from service.generations.workdirs import Workdirs


async def test_an_empty_workdir_is_reused_and_a_busy_one_is_not_shared(scratch: Path):
    dirs = Workdirs(str(scratch))
    async with dirs.lease() as first:
        async with dirs.lease() as second:
            assert first != second  # two jobs at once never share one
            assert first.parent == second.parent
    async with dirs.lease() as again:
        assert again in (first, second)
    assert sorted(p.name for p in first.parent.iterdir()) == [".owner", "1", "2"]


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
    assert [p.name for p in failed.parent.iterdir()] == [".owner"]  # the lock its process holds


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


_HOLDER = """
import asyncio, sys
import pytest

from service.generations import workdirs
from service.generations.workdirs import Workdirs

async def main():
    dirs = Workdirs(sys.argv[1])
    async with dirs.lease() as path:
        (path / "partial.mp4").write_bytes(b"x")
        print(path.parent, flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def _holding(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(parent)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


async def test_the_roots_of_killed_processes_are_removed_when_a_new_one_starts(scratch: Path):
    killed, killed_root = _holding(scratch)
    alive, alive_root = _holding(scratch)
    try:
        killed.kill()
        killed.wait(10)
        (scratch / "video-gen-work-not-ours").mkdir()  # no owner file: left alone
        dirs = Workdirs(str(scratch))
        async with dirs.lease() as path:
            assert path.parent.is_dir()
        assert not killed_root.exists()
        assert (alive_root / "1" / "partial.mp4").exists()  # its process still holds it
        assert (scratch / "video-gen-work-not-ours").is_dir()
        dirs.close()
    finally:
        alive.kill()
        alive.wait(10)


async def test_an_unreadable_parent_is_not_swept_and_the_job_goes_on(scratch: Path, monkeypatch: pytest.MonkeyPatch):
    def unreadable(path: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(workdirs.os, "scandir", unreadable)
    assert workdirs.sweep(str(scratch), keep="") == []
    monkeypatch.undo()
    dirs = Workdirs(str(scratch))
    monkeypatch.setattr(workdirs.os, "scandir", unreadable)
    async with dirs.lease() as path:
        assert path.is_dir()
    monkeypatch.undo()
    dirs.close()
