"""The claimer's reads: a claim blocked on some models' streams only (another model full) waits
briefly, since the wake-up (``CLIENT UNBLOCK``) can reach Redis before the read it should end."""

from __future__ import annotations

from typing import Any

from service.core.keys import Keys
from service.core.redis import BLOCK_MS
from workers.claiming import FULL_MODEL_BLOCK_MS, Claimer
from workers.slots import ModelSlots


class RecordingStream:
    """Just what the claimer calls, recording each claim's blocking time."""

    keys = Keys("t")

    def __init__(self) -> None:
        self.blocks: list[int] = []

    async def reader_id(self, reader: Any) -> int:
        return 7

    async def migrate_legacy(self, models: Any) -> tuple[int, int]:
        return 0, 0

    async def reclaim(self, stream: str, consumer: str, count: int, idle_ms: int, cursor: str) -> tuple[str, list]:
        return "0-0", []

    async def claim(self, reader: Any, consumer: str, free: dict[str, int], block_ms: int) -> list:
        self.blocks.append(block_ms)
        return []


async def test_a_claim_blocks_long_only_when_it_reads_every_models_stream() -> None:
    stream, slots = RecordingStream(), ModelSlots({"a": 1, "b": 1}, default=1)
    claimer = Claimer(stream, None, name="w", slots=slots, lease_ms=30_000, renew_every=10.0)  # type: ignore[arg-type]
    await claimer.claim(slots.free_slots(), 0.0)
    slots.take("a")  # a is full: the next claim reads b's stream only
    await claimer.claim(slots.free_slots(), 0.0)
    assert stream.blocks == [BLOCK_MS, FULL_MODEL_BLOCK_MS]
