"""A generation record as the code handles it: a typed row, never a ``dict[str, Any]``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from service.generations.status import GenerationStatus


class Progress(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The model's latest progress report (best effort, at most one write a second)."""

    message: str | None = None
    fraction: float | None = None
    queue_position: int | None = None


class GenerationRecord(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    project_id: str | None
    model: str
    prompt: str
    source_key: str
    requested_duration: str
    duration_seconds: float | None
    """The stored video's probed length."""
    status: GenerationStatus
    output_key: str | None
    credits_charged: int
    credits_refunded: int
    provider_request_id: str | None
    progress: Progress | None
    attempts: int
    """Deliveries that started (or resumed) the generation."""
    error: str | None
    error_status: int | None
    idempotency_key: str | None
    generation_ms: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _progress(raw: Any) -> Progress | None:
    if isinstance(raw, (str, bytes)):
        try:
            raw = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None
    if not isinstance(raw, dict) or not raw:
        return None
    return Progress(
        message=raw.get("message"),
        fraction=raw.get("fraction"),
        queue_position=raw.get("queue_position", raw.get("queuePosition")),
    )


def from_row(row: dict[str, Any]) -> GenerationRecord:
    """A record from a row as Piccolo returns it (the JSON column as text)."""
    values = dict(row)
    values["progress"] = _progress(values.get("progress"))
    values["status"] = GenerationStatus(values["status"])
    values["credits_charged"] = int(values["credits_charged"])
    values["credits_refunded"] = int(values["credits_refunded"])
    return GenerationRecord(**values)


@dataclass(frozen=True)
class NewGeneration:
    """What a job knows of its generation before the record exists."""

    id: str
    user_id: str
    model: str
    prompt: str
    source_key: str
    requested_duration: str
    project_id: str | None = None
    idempotency_key: str | None = None

    def request(self) -> tuple[str | None, ...]:
        """The columns every new record starts with, in the order the inserts name them: id,
        user_id, project_id, model, prompt, source_key, requested_duration."""
        return (
            self.id,
            self.user_id,
            self.project_id,
            self.model,
            self.prompt,
            self.source_key,
            self.requested_duration,
        )


def running_record(new: NewGeneration, *, cost: int, attempts: int, ts: datetime) -> GenerationRecord:
    """The record ``create_running`` (or ``charging.charge_in_one_call``) wrote, without reading it back."""
    return GenerationRecord(
        id=new.id,
        user_id=new.user_id,
        project_id=new.project_id,
        model=new.model,
        prompt=new.prompt,
        source_key=new.source_key,
        requested_duration=new.requested_duration,
        duration_seconds=None,
        status=GenerationStatus.RUNNING,
        output_key=None,
        credits_charged=cost,
        credits_refunded=0,
        provider_request_id=None,
        progress=None,
        attempts=attempts,
        error=None,
        error_status=None,
        idempotency_key=new.idempotency_key,
        generation_ms=None,
        created_at=ts,
        started_at=ts,
        finished_at=None,
    )
