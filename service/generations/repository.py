"""Reads and state changes of generation records (money moves in ``service.ledger.service``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from service.generations.tables import Generation

TERMINAL = ("succeeded", "failed")


def now() -> datetime:
    return datetime.now(timezone.utc)


async def get(generation_id: str) -> dict[str, Any] | None:
    return await Generation.select().where(Generation.id == generation_id).first()


async def update(generation_id: str, **values: Any) -> None:
    """Set columns by name on one record."""
    await Generation.update({getattr(Generation, k): v for k, v in values.items()}).where(
        Generation.id == generation_id
    )


async def mark_started(generation_id: str, attempts: int) -> None:
    await update(generation_id, status="generating", started_at=now(), attempts=attempts)


async def mark_succeeded(generation_id: str, *, output_key: str, duration_seconds: float, generation_ms: int) -> None:
    await update(generation_id, status="succeeded", output_key=output_key, duration_seconds=duration_seconds,
                 generation_ms=generation_ms, finished_at=now(), error=None, error_status=None)
