"""What a worker process does before it schedules: name itself, catch its signals, wait for the database.

A process manager may start the worker before the database: it waits (and says so) rather than
exiting, unless the database refuses it for good (no such database or role).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

import structlog

from service.core import db
from service.core.db_refusals import describe_connect_error, is_permanent_refusal
from service.core.settings import Settings

log = structlog.get_logger(__name__)


def consumer_name() -> str:
    """This process's consumer name in the group: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def signal_event(hurry: asyncio.Event) -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT; a second one also sets ``hurry``."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if event.is_set():
            hurry.set()
        event.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return event


async def connect_database(settings: Settings, stop: asyncio.Event) -> bool:
    """Open the database pool, waiting (and saying so) while the database is unreachable.

    True once connected; False when ``stop`` came first (nothing left to release)."""
    connected = False
    while not stop.is_set():
        try:
            if not connected:
                await db.connect(settings.database_url, pool_size=settings.database_pool_size, name="video-gen-worker")
                connected = True
            await db.require_migrated()
            return True
        except SystemExit:
            if connected:
                await db.disconnect()
            raise
        except Exception as exc:
            if is_permanent_refusal(exc):  # no such database or role: waiting will not mend it
                raise SystemExit(f"video-gen: {describe_connect_error(settings.database_url, exc)}") from None
            log.warning("worker.database_unavailable", error=describe_connect_error(settings.database_url, exc))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
    if connected:
        await db.disconnect()
    return False
