"""Reads and state changes of generation records (money moves in ``service.ledger.service``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from service.generations.schemas import GenerationOut, GenerationPage, format_duration
from service.generations.tables import Generation
from service.ledger import pagination

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


@dataclass(frozen=True)
class GenerationFilter:
    """Which generations to list: every given field must match (``since`` inclusive, ``until`` not)."""

    user_id: str | None = None
    status: str | None = None
    model: str | None = None
    project_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def generation_out(row: dict[str, Any]) -> GenerationOut:
    seconds = row["duration_seconds"]
    return GenerationOut(
        id=row["id"], user_id=row["user_id"], project_id=row["project_id"], model=row["model"], prompt=row["prompt"],
        source_key=row["source_key"], requested_duration=row["requested_duration"],
        duration=None if seconds is None else format_duration(seconds), status=row["status"],
        s3_key=row["output_key"], credits_charged=int(row["credits_charged"]),
        credits_refunded=int(row["credits_refunded"]), error=row["error"], generation_time=row["generation_ms"],
        created_at=pagination.iso(row["created_at"]) or "", finished_at=pagination.iso(row["finished_at"]),
    )


async def list_page(filters: GenerationFilter, *, limit: int, cursor: str | None) -> GenerationPage:
    """One page of generations matching ``filters``, newest first (cursor pagination)."""
    limit, after = pagination.check_limit(limit), pagination.decode(cursor, key_type=str)
    columns = {"user_id": Generation.user_id, "status": Generation.status, "model": Generation.model,
               "project_id": Generation.project_id}
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
    return GenerationPage(items=[generation_out(r) for r in rows], next_cursor=next_cursor)
