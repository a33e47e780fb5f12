"""The lighter stand-ins for uvicorn's per-connection queue and events behave as theirs do."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.testing import TestClient

from service.core.lean import Event, Pipeline, lighter, share_exception_handlers


def test_pipeline_is_first_in_first_out_through_appendleft_and_pop() -> None:
    queue = Pipeline()
    assert not queue
    queue.appendleft("a")
    queue.appendleft("b")
    assert queue.pop() == "a" and queue.pop() == "b" and not queue


async def test_event_wakes_every_waiter_and_can_be_cleared() -> None:
    event = Event()
    waiters = [asyncio.create_task(event.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert event.is_set() and await event.wait()
    event.clear()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not late.done()
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)
    assert event._waiters == []  # a cancelled waiter leaves nothing behind


def test_lighter_keeps_the_state_of_the_event_it_replaces() -> None:
    done = asyncio.Event()
    done.set()
    assert lighter(done).is_set() and not lighter(asyncio.Event()).is_set()
    ours = Event()
    assert lighter(ours) is ours


def test_each_route_resolves_its_exception_handlers_once_with_every_layer() -> None:
    def teapot(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        return Response("teapot", status_code=418)

    @get("/boom", exception_handlers={KeyError: teapot}, sync_to_thread=False)
    def boom() -> str:
        raise KeyError("x")

    app = Litestar([boom], exception_handlers={ValueError: teapot})
    share_exception_handlers(app)
    [handler] = [
        h for route in app.routes if route.path == "/boom" for h in route.route_handlers if "GET" in h.http_methods
    ]
    first = handler.resolve_exception_handlers()
    assert first is handler.resolve_exception_handlers()
    assert KeyError in first and ValueError in first
    with TestClient(app) as client:
        assert client.get("/boom").status_code == 418
