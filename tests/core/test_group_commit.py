"""The group commit on its own, with a fake writer: who goes in which round trip, and who gets
which answer. Round trips are counted, never timed."""

from __future__ import annotations

import asyncio

import pytest

from service.core.group_commit import GroupCommit, PerLoop


class Writer:
    """Records each batch; answers ``item * 10``, or an error for items named in ``refuse``; holds
    a round trip open while ``gate`` is clear, and raises ``fail`` for batches containing it."""

    def __init__(self, *, refuse: frozenset[int] = frozenset(), fail: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.refuse, self.fail = refuse, fail
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.entered.set()
        await self.gate.wait()
        if self.fail is not None and self.fail in items:
            raise ValueError(f"batch with {self.fail} refused")
        return [ValueError(f"no {i}") if i in self.refuse else i * 10 for i in items]


async def _in_flight(writer: Writer, batcher: GroupCommit[int, int], item: int) -> asyncio.Task[int]:
    """Start a round trip carrying ``item`` and hold it open."""
    writer.gate.clear()
    task = asyncio.create_task(batcher.submit(item))
    await writer.entered.wait()
    return task


async def test_a_lone_item_goes_at_once_and_concurrent_ones_share_a_round_trip() -> None:
    writer = Writer()
    batcher = GroupCommit(writer)
    assert await batcher.submit(1) == 10
    assert await asyncio.gather(*(batcher.submit(i) for i in (2, 3, 4))) == [20, 30, 40]
    assert writer.batches == [[1], [2, 3, 4]] and batcher.round_trips == 2


async def test_items_arriving_during_a_round_trip_go_together_in_the_next() -> None:
    writer = Writer()
    batcher = GroupCommit(writer)
    first = await _in_flight(writer, batcher, 1)
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    writer.gate.set()
    assert await first == 10 and [await t for t in later] == [20, 30, 40]
    assert writer.batches == [[1], [2, 3, 4]]


async def test_each_caller_gets_its_own_error() -> None:
    batcher = GroupCommit(Writer(refuse=frozenset({2})))
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)), return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "no 2"


async def test_a_failed_round_trip_fails_exactly_its_callers() -> None:
    writer = Writer(fail=1)
    batcher = GroupCommit(writer)
    first = await _in_flight(writer, batcher, 1)
    second = asyncio.create_task(batcher.submit(2))
    also_first = asyncio.create_task(batcher.submit(3))  # queued behind the round trip in flight
    await asyncio.sleep(0)
    writer.gate.set()
    with pytest.raises(ValueError, match="batch with 1 refused"):
        await first
    assert await second == 20 and await also_first == 30
    assert writer.batches == [[1], [2, 3]]


async def test_a_refused_batch_is_written_again_item_by_item_when_split_says_so() -> None:
    writer = Writer(fail=2)
    batcher = GroupCommit(writer, split=lambda exc: isinstance(exc, ValueError))
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)), return_exceptions=True)
    assert results[0] == 10 and results[2] == 30 and isinstance(results[1], ValueError)
    assert writer.batches == [[1, 2, 3], [1], [2], [3]] and batcher.round_trips == 4


async def test_without_split_a_refused_batch_fails_all_its_callers() -> None:
    writer = Writer(fail=2)
    batcher = GroupCommit(writer)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results) and writer.batches == [[1, 2, 3]]


async def test_a_caller_cancelled_while_queued_is_not_written() -> None:
    writer = Writer()
    batcher = GroupCommit(writer)
    first = await _in_flight(writer, batcher, 1)
    gone, kept = asyncio.create_task(batcher.submit(2)), asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    writer.gate.set()
    assert await first == 10 and await kept == 30 and gone.cancelled()
    assert writer.batches == [[1], [3]]


async def test_a_caller_cancelled_in_flight_does_not_cancel_the_others() -> None:
    writer = Writer()
    batcher = GroupCommit(writer)
    writer.gate.clear()
    gone, kept = asyncio.create_task(batcher.submit(1)), asyncio.create_task(batcher.submit(2))
    await writer.entered.wait()
    gone.cancel()
    await asyncio.sleep(0)
    writer.gate.set()
    assert await kept == 20 and gone.cancelled()
    assert writer.batches == [[1, 2]]


async def test_batches_hold_at_most_max_items() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_items=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert writer.batches == [[0, 1], [2, 3], [4]]


async def test_a_writer_answering_the_wrong_count_fails_the_batch() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: GroupCommit[int, int] = GroupCommit(short)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_per_loop_keeps_one_value_per_running_loop() -> None:
    made: list[object] = []
    holder = PerLoop(lambda: made.append(object()) or made[-1])
    assert holder.get() is holder.get() and len(made) == 1

    def other_loop() -> object:
        async def get() -> object:
            return holder.get()

        return asyncio.run(get())

    assert await asyncio.to_thread(other_loop) is not made[0] and len(made) == 2
