"""Graceful API shutdown: on SIGTERM, refuse new jobs and answer the waiting requests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

from service.jobs.inbox import ReplyInbox


def install_shutdown_hook(inbox: ReplyInbox) -> Callable[[], None]:
    """On SIGTERM/SIGINT, release ``inbox``'s waiters before the server stops (returns the uninstaller).

    The server (uvicorn, or the embedded CLI through asyncio) owns the signals; this chains onto
    its handler so waiting requests are answered (202 with their job id) and new jobs refused at
    once, while the server closes its sockets and waits for the answers to go out. Nothing is
    installed when no one handles the signal (tests) or off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if not callable(handler):  # SIG_DFL / SIG_IGN: not ours to take over
            continue

        def chained(signum: int, frame: Any, _prev: Callable[..., Any] = handler) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(inbox.release_all)
            _prev(signum, frame)

        previous[sig] = handler
        signal.signal(sig, chained)

    def uninstall() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return uninstall
