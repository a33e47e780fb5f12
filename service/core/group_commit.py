"""A group commit: many callers' items written in one round trip, each caller getting its own answer.

The shape of the worker's Redis outbox (``service/jobs/outbox.py``), for writes that answer each
item: ``await batcher.submit(item)`` returns that item's result or raises that item's error.
Nothing waits a fixed time: the first item starts a round trip on the loop's next turn (a lone
item goes at once), and items that arrive while one is in flight go together in the next one, at
most ``max_items`` at a time.

``write`` gets a batch and returns one outcome per item, in order: a result, or an exception
instance for that item alone. When ``write`` raises, every caller of that batch gets the error,
except when ``split(error)`` says the batch wrote nothing (a statement the server refused, which
it rolled back): then each item is written again alone, so one bad item fails only its own caller.

A caller cancelled while its item still waits is dropped from the queue (nothing written for it);
once its item is in flight, the round trip goes on for the others and its answer is discarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
B = TypeVar("B")

Write = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]


def _never(exc: BaseException) -> bool:
    return False


class GroupCommit(Generic[T, R]):
    """Groups concurrent ``submit`` calls into batches written by ``write``, one batch at a time."""

    def __init__(
        self,
        write: Write[T, R],
        *,
        max_items: int = 64,
        split: Callable[[BaseException], bool] = _never,
        name: str = "group-commit",
    ) -> None:
        self._write, self._split, self._max, self._name = write, split, max_items, name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.round_trips = 0
        """Batches written so far (tests and benchmarks count them)."""

    async def submit(self, item: T) -> R:
        """Write ``item`` with whatever else is waiting; its own result, or its own error."""
        entry = (item, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self._name)
        try:
            return await asyncio.shield(entry[1])  # a cancelled caller does not cancel the others
        except asyncio.CancelledError:
            if entry in self._queue:  # not sent yet: nothing is written for it
                self._queue.remove(entry)
            entry[1].cancel()
            raise

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            try:
                await self._round_trip(batch)
            except BaseException as exc:  # cancelled (the loop is closing): nobody may wait forever
                for _, future in batch + self._queue:
                    _settle(future, exc)
                self._queue = []
                raise

    async def _round_trip(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.round_trips += 1
        try:
            outcomes = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not self._split(exc):
                for _, future in batch:
                    _settle(future, exc)
                return
            for entry in batch:  # each alone: the error finds its own item (a gone caller's is dropped)
                if not entry[1].done():
                    await self._round_trip([entry])
            return
        if len(outcomes) != len(batch):
            error = RuntimeError(f"{self._name}: {len(outcomes)} outcomes for {len(batch)} items")
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes):
            _settle(future, outcome)


class PerLoop(Generic[B]):
    """One ``B`` per event loop, made on first use: a batcher's futures and task belong to the
    loop that runs them (tests run each in a loop of its own)."""

    def __init__(self, make: Callable[[], B]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: B | None = None

    def get(self) -> B:
        loop = asyncio.get_running_loop()
        if self._value is None or self._loop is not loop:
            self._loop, self._value = loop, self._make()
        return self._value


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # its caller was cancelled: nobody reads it
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
        future.add_done_callback(_retrieved)
    else:
        future.set_result(outcome)


def _retrieved(future: asyncio.Future[object]) -> None:
    """Mark the error seen: its caller got it, or was cancelled and needs it no more."""
    if not future.cancelled():
        future.exception()
