"""Lighter stand-ins for what uvicorn and Litestar keep per request, for processes that hold many.

A held request costs its connection's protocol objects for as long as it waits; uvicorn gives
each connection a ``deque`` for pipelined requests and two ``asyncio.Event`` (each with a
``deque`` of waiters): 760 bytes apiece, most of it an empty block of 64 slots. The same
behaviour with a list costs 56 (``service.core.http`` swaps them in).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class Pipeline(list[Any]):
    """The pipelined requests queue, as uvicorn uses it (``appendleft``, ``pop``, truth)."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class Event:
    """``asyncio.Event`` (``set``, ``clear``, ``is_set``, ``wait``) with its waiters in a list made on demand."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self, flag: bool = False) -> None:
        self._flag = flag
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            for fut in self._waiters or ():
                if not fut.done():
                    fut.set_result(True)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> bool:
        if self._flag:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            await fut
            return True
        finally:
            self._waiters.remove(fut)


def lighter(event: Any) -> Any:
    """An ``Event`` in the state of ``event`` (an asyncio one nobody awaits yet)."""
    return Event(event.is_set()) if isinstance(event, asyncio.Event) else event


def share_exception_handlers(app: Any) -> None:
    """Resolve each route's exception handlers once, not per request.

    Litestar's router builds a new dict of a route's exception handlers for every request (about
    630 bytes, kept in the request's scope for its life, though its docstring says memoized); they
    are fixed once the app is built, so each handler gets its resolved map to return. A handler
    class with ``__slots__`` (none here) keeps Litestar's behaviour.
    """
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            resolved = handler.resolve_exception_handlers()
            with contextlib.suppress(AttributeError):
                handler.resolve_exception_handlers = _returning(resolved)


def _returning(value: Any) -> Any:
    def resolve() -> Any:
        return value

    return resolve
