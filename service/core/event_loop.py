"""The event loop a process runs on (``EVENT_LOOP``) and the HTTP parser that goes with it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_on(event_loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop (``"uvloop"``) or the standard loop (anything else)."""
    if event_loop == "uvloop":
        import uvloop  # imported only when chosen: asyncio runs without it

        return uvloop.run(main)
    return asyncio.run(main)


def http_parser_for(event_loop: str) -> str:
    """uvicorn's HTTP implementation that goes with the loop: httptools with uvloop, h11 otherwise."""
    return "httptools" if event_loop == "uvloop" else "h11"
