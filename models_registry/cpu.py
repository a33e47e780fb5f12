"""CPU-bound work of plugins (rendering, probing, trimming, extending) off the event loop.

``await run_cpu(fn, *args)`` runs ``fn`` in this process's pool of worker processes, one per core
(``CPU_PROCESSES``), so a worker running hundreds of provider jobs never renders, decodes or
encodes on its event loop, and never more than the cores at once however many jobs finish
together. The worker process opens the pool at start (``start``) and closes it at exit. Where no
pool was started (the API, unit tests, a plugin called directly), the work runs in a thread, still
at most one per core at once.

``fn`` and its arguments are pickled: a module-level function and plain values (paths, bytes).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ProcessPoolExecutor | None = None
_users = 0  # several worker pools may share a process (the embedded stack): the last one closes it
_threads: asyncio.Semaphore | None = None
_threads_loop: asyncio.AbstractEventLoop | None = None


def cores() -> int:
    """The cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def start(processes: int = 0) -> int:
    """Open the pool (``processes`` workers, 0: the cores), or share the open one; returns its size."""
    global _pool, _users
    size = processes or cores()
    _users += 1
    if _pool is None:
        _pool = _new_pool(size)
    return _pool._max_workers


def _new_pool(size: int) -> ProcessPoolExecutor:
    # spawn, not fork: the worker has threads and an event loop a forked child must not inherit.
    return ProcessPoolExecutor(
        max_workers=size,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _exit_with_parent(parent: int) -> None:
    """In each pool process: exit once the process that opened the pool is gone. A worker killed
    with SIGKILL (or by the OOM killer) never closes its pool, and the children, which hold both
    ends of their task queue's pipe, would otherwise wait on it forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def stop() -> None:
    """Release one ``start``; the last closes the pool (the worker's jobs are over by then)."""
    global _pool, _users
    _users = max(_users - 1, 0)
    if _pool is not None and _users == 0:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


async def run_cpu(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the process pool (a thread when none was started); its result or exception."""
    global _pool
    loop = asyncio.get_running_loop()
    if _pool is not None:
        pool = _pool
        try:
            return await loop.run_in_executor(pool, fn, *args)
        except BrokenProcessPool:  # a child died (OOM killer...): a new pool for this and later work
            if _pool is pool:
                size, _pool = pool._max_workers, None
                pool.shutdown(wait=False, cancel_futures=True)
                _pool = _new_pool(size)
            return await loop.run_in_executor(_pool, fn, *args)
    global _threads, _threads_loop
    if _threads is None or _threads_loop is not loop:
        _threads, _threads_loop = asyncio.Semaphore(cores()), loop
    async with _threads:
        return await asyncio.to_thread(fn, *args)
