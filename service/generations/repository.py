"""Generation records: reads, and the writes that leave a record's status alone.

The status changes (``GenerationStatus``'s named transitions) are in ``transitions.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.core import pagination
from service.generations.records import GenerationRecord, Progress, from_row
from service.generations.schemas import GenerationFilter
from service.generations.status import GenerationStatus
from service.generations.tables import Generation

RUNNING = GenerationStatus.RUNNING
ALL_COLUMNS = Generation.all_columns()


def now() -> datetime:
    return datetime.now(UTC)


def first_record(rows: list[dict[str, Any]]) -> GenerationRecord | None:
    """The record of the first of ``rows`` (a ``RETURNING`` statement's), None when there is none."""
    return from_row(rows[0]) if rows else None


async def get(generation_id: str) -> GenerationRecord | None:
    return first_record(await Generation.select().where(Generation.id == generation_id).limit(1))


async def record_refund(generation_id: str, amount: int) -> GenerationRecord | None:
    """Any status: an admin's refund of ``amount`` (in the refund's transaction)."""
    return first_record(
        await Generation.update({Generation.credits_refunded: amount})
        .where(Generation.id == generation_id)
        .returning(*ALL_COLUMNS)
    )


async def save_provider_request(generation_id: str, request_id: str) -> None:
    """The provider's request id, saved before waiting on it: a later delivery resumes it."""
    await Generation.update({Generation.provider_request_id: request_id}).where(Generation.id == generation_id)


async def save_progress(generation_id: str, progress: Progress) -> None:
    await Generation.update(
        {
            Generation.progress: {
                "message": progress.message,
                "fraction": progress.fraction,
                "queue_position": progress.queue_position,
            }
        }
    ).where((Generation.id == generation_id) & (Generation.status == RUNNING))


async def list_page(
    filters: GenerationFilter, *, limit: int, cursor: str | None
) -> tuple[list[GenerationRecord], str | None]:
    """One page of generations matching ``filters``, newest first, and the next page's cursor."""
    limit, after = pagination.check_limit(limit), pagination.decode(cursor, key_type=str)
    columns = {
        "user_id": Generation.user_id,
        "status": Generation.status,
        "model": Generation.model,
        "project_id": Generation.project_id,
    }
    query = Generation.select().order_by(Generation.created_at, Generation.id, ascending=False).limit(limit + 1)
    for name, column in columns.items():
        if getattr(filters, name) is not None:
            query = query.where(column == getattr(filters, name))
    if filters.since is not None:
        query = query.where(Generation.created_at >= pagination.utc(filters.since))
    if filters.until is not None:
        query = query.where(Generation.created_at < pagination.utc(filters.until))
    if after is not None:
        query = query.where(pagination.after(after, Generation.created_at, Generation.id))
    rows, next_cursor = pagination.page(await query, limit, lambda r: (r["created_at"], r["id"]))
    return [from_row(r) for r in rows], next_cursor
