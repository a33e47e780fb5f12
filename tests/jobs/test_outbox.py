"""``Outbox``: writes that arrive while a round trip is in flight go together in the next one,
and every caller gets the outcome of the round trip that carried its writes."""

from __future__ import annotations

import asyncio

import pytest

from service.jobs.outbox import Batch, Outbox


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[bytes]] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()

    async def write(self, batch: Batch) -> None:
        self.batches.append(list(batch.events))
        if len(self.batches) == 1:
            await self.release.wait()  # the first round trip stays in flight until released
        if self.fail_on == len(self.batches):
            raise ConnectionError("redis went away")


def event(n: int):
    return lambda batch: batch.events.append(b"%d" % n)


async def test_writes_arriving_during_a_round_trip_go_together_in_the_next() -> None:
    rec = Recorder()
    outbox = Outbox(rec.write)
    first = asyncio.create_task(outbox.add(event(0)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first round trip is in flight
    later = [asyncio.create_task(outbox.add(event(n))) for n in range(1, 6)]
    await asyncio.sleep(0)
    assert rec.batches == [[b"0"]] and not first.done()
    rec.release.set()
    await asyncio.gather(first, *later)
    assert rec.batches == [[b"0"], [b"1", b"2", b"3", b"4", b"5"]]


async def test_a_failed_round_trip_fails_exactly_its_callers() -> None:
    rec = Recorder(fail_on=2)
    outbox = Outbox(rec.write)
    first = asyncio.create_task(outbox.add(event(0)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    doomed = [asyncio.create_task(outbox.add(event(n))) for n in (1, 2)]
    await asyncio.sleep(0)
    rec.release.set()
    await first
    for task in doomed:
        with pytest.raises(ConnectionError, match="redis went away"):
            await task
    await outbox.add(event(3))  # the next round trip is a new one
    assert rec.batches[-1] == [b"3"]


async def test_a_cancelled_caller_does_not_cancel_the_others_writes() -> None:
    rec = Recorder()
    outbox = Outbox(rec.write)
    first = asyncio.create_task(outbox.add(event(0)))
    second = asyncio.create_task(outbox.add(event(1)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    first.cancel()
    rec.release.set()
    await second
    assert rec.batches == [[b"0", b"1"]]


async def test_a_posted_write_is_not_waited_for_and_goes_before_later_ones() -> None:
    rec = Recorder(fail_on=1)
    outbox = Outbox(rec.write)
    posted = outbox.post(event(0))  # returns at once
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # its round trip is in flight
    later = asyncio.create_task(outbox.add(event(1)))
    await asyncio.sleep(0)
    assert rec.batches == [[b"0"]] and not posted.done()
    rec.release.set()
    await later  # the next round trip, after the posted write's
    assert rec.batches == [[b"0"], [b"1"]]
    assert isinstance(posted.exception(), ConnectionError)  # its error is there, marked seen
