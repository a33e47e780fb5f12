"""The local store's writes made durable in groups.

A store (``local.py``) writes an object and its sidecar under temporary names in the object's
directory and hands them here as a ``Pending``. Every store waiting at that moment goes in one
trip to a thread (a group commit, ``service.core.group_commit``): their files are flushed to disk,
renamed into place (the sidecar first: an object that exists always has its metadata beside it)
and the renames flushed, and only then does any of those stores return. A crash at any point
leaves the old object or the new one, each whole; an object whose store returned survives it.

On Linux a flush is one ``syncfs(2)`` per file system in the batch: the kernel writes everything
dirty there together, which here cost 5 ms for 120 small files against 30 ms for an ``fsync(2)``
each. It flushes the whole file system, other programs' files included, so with
``STORAGE_SYNCFS=false`` (a store sharing its disk with heavy writers), or where there is no
``syncfs``, each file and then each directory is fsynced instead, still one thread trip a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from service.core.group_commit import GroupCommit, PerLoop
from service.storage.local_writes import unlink_quietly, written_temp

MAX_ITEMS = 256  # stores per thread trip
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


@dataclass(eq=False)
class Pending:
    """One store's files, written and not yet flushed: renamed into place by ``Committer.commit``."""

    directory: int
    """A descriptor of the directory holding the files (closed by the commit)."""
    renames: list[tuple[str, str]]
    """Temporary name -> final name in ``directory``, in the order they are renamed."""
    sent: bool = False
    """Handed to a thread: from then on the batch finishes it, whatever its caller does."""

    def discard(self) -> None:
        """Remove the temporary files still there and close the directory (never raises)."""
        for temp, _ in self.renames:
            with contextlib.suppress(OSError):
                unlink_quietly(temp, self.directory)
        with contextlib.suppress(OSError):
            os.close(self.directory)


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function  # a ctypes call releases the GIL while the kernel writes


_SYNCFS = _load_syncfs()


class Committer:
    """Flushes and renames the stores of one ``LocalStorage``, a batch per thread trip."""

    def __init__(self, *, syncfs: bool = True) -> None:
        self.syncfs = _SYNCFS if syncfs else None
        self._batches: PerLoop[GroupCommit[Pending, None]] = PerLoop(
            lambda: GroupCommit(self._commit_many, max_items=MAX_ITEMS, name="storage-commit")
        )

    async def commit(self, pending: Pending) -> None:
        """Flush ``pending``'s files, rename them into place, flush the renames; its error alone
        if it fails (its temporary files are then removed)."""
        try:
            await self._batches.get().submit(pending)
        except asyncio.CancelledError:
            if not pending.sent:  # never reached a thread: nothing of it is in place
                pending.discard()
            raise

    async def _commit_many(self, items: list[Pending]) -> list[BaseException | None]:
        for item in items:
            item.sent = True
        return await asyncio.to_thread(self._commit_blocking, items)

    def _commit_blocking(self, items: list[Pending]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(items)
        try:
            self._flush_files(items)
            for i, item in enumerate(items):
                try:
                    for temp, final in item.renames:
                        os.replace(temp, final, src_dir_fd=item.directory, dst_dir_fd=item.directory)
                except OSError as exc:
                    outcomes[i] = exc
            self._flush_directories([item for item, outcome in zip(items, outcomes) if outcome is None])
        except OSError as exc:  # a flush failed: none of the batch is known to be on disk
            outcomes = [exc] * len(items)
        for item, outcome in zip(items, outcomes):
            if outcome is None:
                os.close(item.directory)
            else:
                item.discard()
        return outcomes

    def _flush_files(self, items: list[Pending]) -> None:
        if self.syncfs is not None:
            self._syncfs(items)
            return
        for item in items:
            for temp, _ in item.renames:
                fd = os.open(temp, _READ, dir_fd=item.directory)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _flush_directories(self, items: list[Pending]) -> None:
        if self.syncfs is not None:
            self._syncfs(items)
            return
        for item in items:
            with contextlib.suppress(OSError):  # not every platform can sync a directory
                os.fsync(item.directory)

    def _syncfs(self, items: list[Pending]) -> None:
        assert self.syncfs is not None
        # One call per file system (``st_dev``) the batch's directories are on.
        for directory in {os.fstat(item.directory).st_dev: item.directory for item in items}.values():
            if self.syncfs(directory) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}")


async def written_in_thread(pending: Pending, fill: Callable[[int], object]) -> str:
    """``written_temp`` in ``pending``'s directory, in a thread. A caller cancelled meanwhile still
    waits for the thread, which writes through the directory's descriptor that the caller's
    cleanup closes; the file it made joins ``pending``, to be removed with it."""
    future = asyncio.ensure_future(asyncio.to_thread(written_temp, pending.directory, fill))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled() and future.exception() is None:
            pending.renames.append((future.result(), ""))
        raise
