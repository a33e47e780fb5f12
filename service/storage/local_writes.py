"""The local store's new files, made through a directory file descriptor: written under a
temporary name, then flushed to disk and renamed into place with the other stores of the moment
(``local_commit.py``).
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Callable

from service.storage.local_files import TMP_PREFIX

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
_ADOPT = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | _CLOEXEC  # never a FIFO's wait, never a link


def written_temp(directory: int, fill: Callable[[int], object]) -> str:
    """The name of a new temporary file in ``directory`` holding what ``fill`` wrote to its
    descriptor (not yet flushed); nothing is left behind on failure."""
    fd, name = new_temp(directory)
    try:
        try:
            fill(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_quietly(name, directory)
        raise
    return name


def temp_name() -> str:
    # Random, not a pid: processes of several containers (all pid 1) share a volume. Drawn once per
    # process (again in a forked child), then counted: a draw is a system call, and in a thread
    # every system call is a hand-off of the GIL.
    return f"{TMP_PREFIX}{_token[0]}-{next(_serial)}"


_token, _serial = [os.urandom(8).hex()], itertools.count()
os.register_at_fork(after_in_child=lambda: _token.__setitem__(0, os.urandom(8).hex()))


def new_temp(directory: int) -> tuple[int, str]:
    """A new private file in ``directory``: its descriptor and name (``O_EXCL``: the name is ours,
    and a link there is never followed)."""
    while True:
        name = temp_name()
        try:
            return os.open(name, _NEW, 0o600, dir_fd=directory), name
        except FileExistsError:
            continue


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def adopt(source: str, directory: int) -> str | None:
    """Move ``source`` into ``directory`` under a temporary name (not yet flushed) when that is
    safe: a regular file (not a symlink) with no other hard link (nothing else shares it) on the
    same file system. None when it is not, and the caller copies instead."""
    try:
        fd = os.open(source, _ADOPT)
    except OSError:
        return None  # the copy reports what is wrong with it
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return None
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # like a copy: objects are private to the service's user
    finally:
        os.close(fd)
    name = temp_name()
    try:
        os.rename(source, name, dst_dir_fd=directory)
    except OSError as exc:
        if exc.errno == errno.EXDEV:  # another file system, or another mount of the same one
            return None
        raise
    return name


def unlink_quietly(name: str, directory: int | None = None) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        pass
