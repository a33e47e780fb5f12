"""The blocking file work of the local store: containment checks that cost one system call, and
reads (the durable writes are in ``local_writes.py``).

Containment: the root is resolved once, and a key is already validated (relative, no ``.``, ``..``
or empty segment), so ``<root>/<key>`` is the file's real path unless a symlink lies on the way.
A file or directory is opened by that lexical path and the kernel is asked what it really opened
(``/proc/self/fd``): the two differ only when a symlink was followed, and only then is the real
path checked (inside the root, not a sidecar or temporary file). A symlink as the last component
(refused by ``O_NOFOLLOW``), a missing file and a system without ``/proc`` take the thorough path,
``realpath`` before anything is opened or created, as every access did before.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from service.storage.base import InvalidKey, ObjectHead, ObjectNotFound, ObjectTooLarge

META_SUFFIX = ".meta.json"
TMP_PREFIX = ".vg-tmp-"
CHUNK = 1024 * 1024
_PROC_FD = "/proc/self/fd"
_HAS_PROC_FD = os.path.isdir(_PROC_FD)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC  # a FIFO never blocks the open; it is refused after
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC


def reserved(name: str) -> bool:
    """Sidecars and temporary files are not objects."""
    return name.endswith(META_SUFFIX) or name.startswith(TMP_PREFIX)


def inside(prefix: str, real: str, key: str) -> str:
    """``real`` if it names an object inside the root (``prefix`` is the root and a slash); else
    InvalidKey."""
    if not real.startswith(prefix) or real == prefix:
        raise InvalidKey(f"key {key!r} resolves outside the storage directory")
    if reserved(real.rpartition("/")[2]):
        raise InvalidKey(f"reserved name in key {key!r}")
    return real


def resolve(prefix: str, key: str) -> str:
    """The thorough check: the real path of ``key``'s file, symlinks read from disk."""
    lexical = prefix + key
    real = os.path.realpath(lexical)
    return lexical if real == lexical else inside(prefix, real, key)


def opened_path(fd: int, lexical: str) -> str:
    """The real path of what ``fd`` opened (``lexical`` when no symlink was followed)."""
    if _HAS_PROC_FD:
        try:
            return os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:
            pass  # a sandbox that hides it: the thorough way
    return os.path.realpath(lexical)


def read_limited(prefix: str, key: str, max_bytes: int) -> bytes:
    """The bytes of ``key``: ObjectNotFound, ObjectTooLarge (from the size, before reading) or
    InvalidKey when a symlink leads outside the root."""
    lexical = prefix + key
    try:
        fd = os.open(lexical, _READ | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise
        fd = _open_resolved(prefix, key)  # missing, or a symlink: InvalidKey wins over missing
    try:
        real = opened_path(fd, lexical)
        if real != lexical:
            inside(prefix, real, key)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ObjectNotFound(key)
        if info.st_size > max_bytes:
            raise ObjectTooLarge(key, info.st_size, max_bytes)
        # The file may grow between fstat and read; one byte more than allowed tells us.
        data = _read_at_most(fd, max_bytes + 1, info.st_size + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ObjectTooLarge(key, len(data), max_bytes)
    return data


def _open_resolved(prefix: str, key: str) -> int:
    try:
        return os.open(resolve(prefix, key), _READ)
    except (FileNotFoundError, NotADirectoryError):
        raise ObjectNotFound(key) from None


def _read_at_most(fd: int, limit: int, hint: int) -> bytes:
    parts, total, ask = [], 0, min(limit, hint)
    while total < limit:
        chunk = os.read(fd, ask)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        ask = min(limit - total, CHUNK)
    return b"".join(parts)


def open_dir(prefix: str, relative: str, key: str) -> int:
    """A descriptor of the directory ``relative`` to the root (made if missing) for ``key``'s
    files; InvalidKey if it lies outside the root."""
    lexical = prefix + relative if relative else prefix
    try:
        fd = os.open(lexical, _DIR)
    except FileNotFoundError:
        real = os.path.realpath(lexical)  # checked before anything is made
        if real != lexical.rstrip("/") and not real.startswith(prefix):
            raise InvalidKey(f"key {key!r} resolves outside the storage directory") from None
        os.makedirs(real, exist_ok=True)
        fd = os.open(real, _DIR)
    real = opened_path(fd, lexical)
    if real != lexical.rstrip("/") and not (real + "/").startswith(prefix):
        os.close(fd)
        raise InvalidKey(f"key {key!r} resolves outside the storage directory")
    return fd


def object_directory(prefix: str, relative: str, key: str) -> tuple[int, str]:
    """A descriptor of the directory that holds ``relative``'s file (made if missing) and the
    file's name there; an object that is a symlink (inside the root) is written where it points."""
    parent, _, name = relative.rpartition("/")
    directory = open_dir(prefix, parent, key)
    try:
        is_link = stat.S_ISLNK(os.lstat(name, dir_fd=directory).st_mode)
    except FileNotFoundError:
        is_link = False
    except BaseException:
        os.close(directory)
        raise
    if not is_link:
        return directory, name
    os.close(directory)
    parent, _, name = resolve(prefix, key)[len(prefix) :].rpartition("/")
    return open_dir(prefix, parent, key), name


def head(path: Path) -> ObjectHead | None:
    """The size, content type and metadata of the object stored at ``path``; None when missing."""
    try:
        size = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    metadata = meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {}
    return ObjectHead(size=size, content_type=meta.get("content_type"), metadata=metadata)


def meta_path(path: Path) -> Path:
    """The sidecar beside an object's file."""
    return path.with_name(path.name + META_SUFFIX)
