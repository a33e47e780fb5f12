"""The named transitions of ``GenerationStatus``: creating, resuming and ending generation records.

Each transition is one statement that changes a record only from the status it expects (None, or
False, when the record was not in it: another delivery, or an admin, got there first). Money moves
in ``service.ledger``; ``settlement.py`` puts both in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from service.generations.records import GenerationRecord, NewGeneration, running_record
from service.generations.repository import ALL_COLUMNS, first_record, now
from service.generations.status import GenerationStatus
from service.generations.tables import Generation

RUNNING, SUCCEEDED, FAILED = GenerationStatus.RUNNING, GenerationStatus.SUCCEEDED, GenerationStatus.FAILED
CANCELLED = GenerationStatus.CANCELLED


_CREATE = (
    "INSERT INTO generations (id, user_id, project_id, model, prompt, source_key, requested_duration, status, "
    "credits_charged, credits_refunded, attempts, idempotency_key, progress, created_at, started_at) "
    "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, 0, {}, {}, {}, {}, {}) ON CONFLICT (id) DO NOTHING RETURNING id"
)
_SUCCEED = (
    "UPDATE generations SET status = {}, output_key = {}, duration_seconds = {}, generation_ms = {}, "
    "finished_at = {} WHERE id = {} AND status = {} "
    "RETURNING (SELECT balance FROM accounts a WHERE a.user_id = generations.user_id) AS balance"
)


async def create_running(new: NewGeneration, *, cost: int, attempts: int) -> GenerationRecord | None:
    """(none) -> RUNNING: the record of a generation charged ``cost`` (in the debit's transaction).
    None when the generation exists already."""
    ts = now()
    rows = await Generation.raw(
        _CREATE,
        *new.request(),
        str(RUNNING),
        cost,
        attempts,
        new.idempotency_key,
        "{}",
        ts,
        ts,
    )
    return running_record(new, cost=cost, attempts=attempts, ts=ts) if rows else None


async def resume(generation_id: str, *, attempts: int) -> GenerationRecord | None:
    """RUNNING -> RUNNING: a later delivery takes the generation up again."""
    return first_record(
        await Generation.update({Generation.attempts: attempts})
        .where((Generation.id == generation_id) & (Generation.status == RUNNING))
        .returning(*ALL_COLUMNS)
    )


@dataclass(frozen=True)
class Succeeded:
    record: GenerationRecord
    balance: int
    """The owner's balance as the record turned SUCCEEDED (read in the same statement)."""


async def succeed(
    record: GenerationRecord, *, output_key: str, duration_seconds: float, generation_ms: int
) -> Succeeded | None:
    """RUNNING -> SUCCEEDED: the video is stored under ``output_key``."""
    finished = now()
    rows = await Generation.raw(
        _SUCCEED, str(SUCCEEDED), output_key, duration_seconds, generation_ms, finished, record.id, str(RUNNING)
    )
    if not rows:
        return None
    done = msgspec.structs.replace(
        record,
        status=SUCCEEDED,
        output_key=output_key,
        duration_seconds=duration_seconds,
        generation_ms=generation_ms,
        finished_at=finished,
    )
    return Succeeded(done, int(rows[0]["balance"] or 0))


async def _end_running(
    generation_id: str, status: GenerationStatus, *, error: str, error_status: int, refunded: int
) -> GenerationRecord | None:
    """RUNNING -> ``status`` (FAILED or CANCELLED), recording the refund made in the same
    transaction (``refunded`` credits); None when the record was no longer RUNNING."""
    return first_record(
        await Generation.update(
            {
                Generation.status: status,
                Generation.error: error,
                Generation.error_status: error_status,
                Generation.credits_refunded: refunded,
                Generation.finished_at: now(),
            }
        )
        .where((Generation.id == generation_id) & (Generation.status == RUNNING))
        .returning(*ALL_COLUMNS)
    )


async def fail(generation_id: str, *, error: str, error_status: int, refunded: int) -> GenerationRecord | None:
    """RUNNING -> FAILED with its refund (see ``_end_running``)."""
    return await _end_running(generation_id, FAILED, error=error, error_status=error_status, refunded=refunded)


async def cancel(generation_id: str, *, error: str, error_status: int, refunded: int) -> GenerationRecord | None:
    """RUNNING -> CANCELLED with its refund (see ``_end_running``)."""
    return await _end_running(generation_id, CANCELLED, error=error, error_status=error_status, refunded=refunded)


_CREATE_CANCELLED = (
    "INSERT INTO generations (id, user_id, project_id, model, prompt, source_key, requested_duration, status, "
    "credits_charged, credits_refunded, attempts, idempotency_key, progress, error, error_status, created_at, "
    "finished_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, 0, 0, 0, {}, {}, {}, {}, {}, {}) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


async def create_cancelled(new: NewGeneration, *, error: str, error_status: int, submitted_at: datetime) -> bool:
    """(none) -> CANCELLED: a job cancelled before any worker charged it, with nothing charged.
    False when the record exists already (a worker charged it first: cancel it as RUNNING)."""
    rows = await Generation.raw(
        _CREATE_CANCELLED,
        *new.request(),
        str(CANCELLED),
        new.idempotency_key,
        "{}",
        error,
        error_status,
        submitted_at,
        now(),
    )
    return bool(rows)


async def discard_cancelled(generation_id: str) -> None:
    """Undo ``create_cancelled`` (the job was refused before the cancel was recorded)."""
    await Generation.delete().where(
        (Generation.id == generation_id) & (Generation.status == CANCELLED) & (Generation.credits_charged == 0)
    )
