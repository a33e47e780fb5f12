"""The lighter stand-ins for uvicorn's per-connection queue and events behave as theirs do."""

from __future__ import annotations

import asyncio

from service.core.lean import Event, Pipeline, lighter


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
