"""The private temporary directories model runs write their videos in, reused from job to job.

Each ``Workdirs`` makes one private root (``mkdtemp``, mode 0700) on first use and hands out
numbered directories inside it. A directory the job left empty (the usual case: the storage moved
the video out) goes back to the free list instead of being removed and made again. That is not
only two system calls saved: on an ext4 file system without a journal, every new inode is placed
after skipping each one freed in the last minute or more (``recently_deleted`` in the kernel), so a
worker making and removing a directory per job made every later file creation slower (in the
pipeline benchmark that scan took a third of the worker's CPU, counting the files the benchmark's
previous run had deleted). A directory the model left something in is removed
whole, in a thread (removing a video can block for milliseconds on a disk mounted with
``discard``), and a new one is made for a later job.

A root holds an ``.owner`` file its process keeps locked (``flock``) while it lives. A process that
was killed cannot remove its root, so each new one first removes, in a thread, every root beside
it whose lock nobody holds: a killed worker's leftovers go when the next one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path

PREFIX = "video-gen-work-"
OWNER = ".owner"


class Workdirs:
    """One per worker process (per ``Production``); ``close`` removes the root and all in it."""

    def __init__(self, parent: str | None = None) -> None:
        self._parent = parent
        self._root: str | None = None
        self._free: list[Path] = []
        self._made = 0
        self._remove: Callable[[], object] = lambda: None
        self._sweep = True  # the first root made looks for the roots of killed processes

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Path]:
        """An empty private directory for one model run, taken back (or removed) when it ends.
        Taken and checked on the event loop: a stat or a directory listing costs less than a trip
        to a thread."""
        path = self._free.pop() if self._free else None
        if path is None or not path.is_dir():  # none free, or a temp cleaner removed the root
            path = self._new()
        try:
            if self._sweep:  # inside: a job cancelled during the sweep still gives its directory back
                self._sweep = False
                await asyncio.to_thread(sweep, os.path.dirname(path.parent), str(path.parent))
            yield path
        finally:
            if _is_empty(path):
                self._free.append(path)
            else:
                await asyncio.to_thread(shutil.rmtree, path, True)

    def close(self) -> None:
        """Remove the root with every directory in it. Also done when this object is collected or
        the interpreter exits; a process that is killed leaves it behind until the next process
        that makes a root beside it sweeps it (``sweep``)."""
        self._remove()
        self._root, self._free = None, []

    def _new(self) -> Path:
        if self._root is None or not os.path.isdir(self._root):
            self._remove()
            self._root, self._free = tempfile.mkdtemp(prefix=PREFIX, dir=self._parent), []
            owner = os.open(os.path.join(self._root, OWNER), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new and private: never held by another
            self._remove = weakref.finalize(self, _remove_root, self._root, owner)
        self._made += 1
        path = Path(self._root, str(self._made))
        path.mkdir(mode=0o700)
        return path


def _is_empty(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:  # gone or unreadable: not reused
        return False


def _remove_root(root: str, owner: int) -> None:
    shutil.rmtree(root, True)
    os.close(owner)


def sweep(parent: str, keep: str) -> list[str]:
    """Remove the roots in ``parent`` (but ``keep``) whose owner lock nobody holds: their process
    is gone. A root without an owner file (being made right now, or not ours) is left alone. The
    roots removed."""
    removed: list[str] = []
    try:
        with os.scandir(parent) as entries:
            roots = [e.path for e in entries if e.name.startswith(PREFIX) and e.path != keep and _is_dir(e)]
    except OSError:  # an unreadable parent: nothing swept, and the job goes on
        return removed
    for root in roots:
        try:
            owner = os.open(os.path.join(root, OWNER), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its process is alive
        finally:
            os.close(owner)
        shutil.rmtree(root, True)
        removed.append(root)
    return removed


def _is_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)
