"""A job's outcome as the spec shows it: built once, typed, encoded once.

The worker encodes the reply body here; the API sends those bytes as they are (a waiting request)
or decodes them into the same struct (the job view). Both sides say the same thing about the
same record.
"""

from __future__ import annotations

import msgspec

from service.core.errors import AppError, ErrorBody, GenerationFailed
from service.generations.records import GenerationRecord
from service.generations.schemas import Credits, ImageToVideoResponse, format_duration
from service.generations.status import GenerationStatus
from service.jobs.messages import JobReply
from service.ledger import service as ledger

GENERIC_FAILURE = "Image-to-video generation failed"
_encoder = msgspec.json.Encoder()


def success_body(record: GenerationRecord, balance: int) -> ImageToVideoResponse:
    assert record.output_key is not None and record.duration_seconds is not None
    return ImageToVideoResponse(
        success=True,
        s3_key=record.output_key,
        model=record.model,
        credits=Credits(used=record.credits_charged, balance=float(balance)),
        duration=format_duration(record.duration_seconds),
        generation_time=int(record.generation_ms or 0),
    )


def success_reply(record: GenerationRecord, balance: int) -> JobReply:
    """200 and the spec's success body, ``balance`` being the caller's balance now."""
    return JobReply(job_id=record.id, status_code=200, body=msgspec.Raw(_encoder.encode(success_body(record, balance))))


def error_reply(job_id: str, exc: AppError) -> JobReply:
    """The error's status and the spec's error body."""
    return JobReply(job_id=job_id, status_code=exc.status_code, body=msgspec.Raw(_encoder.encode(exc.body())))


def record_error(record: GenerationRecord) -> AppError:
    """The error a FAILED or CANCELLED record answers with."""
    if record.error is None:
        return GenerationFailed("unknown error")
    return AppError(record.error, record.error_status or 500)


async def reply_from_record(record: GenerationRecord) -> JobReply:
    """The reply of a terminal record (the success body carries the balance as it is now)."""
    if record.status is not GenerationStatus.SUCCEEDED:
        return error_reply(record.id, record_error(record))
    return success_reply(record, await ledger.balance_of(record.user_id))


def decode_success(reply: JobReply) -> ImageToVideoResponse:
    return msgspec.json.decode(reply.body, type=ImageToVideoResponse)


def decode_error(reply: JobReply) -> ErrorBody:
    return msgspec.json.decode(reply.body, type=ErrorBody)


_REASONS = {400: "invalid_input", 404: "source_not_found", 413: "source_too_large", 500: "generation_failed"}


def outcome_of(reply: JobReply) -> tuple[str, str]:
    """``(outcome, reason class)`` of a reply, the labels of ``video_gen_jobs_finished_total``:
    ``succeeded`` with no reason, or ``failed`` with one of a few classes (bounded, never the text)."""
    if reply.status_code < 400:
        return "succeeded", ""
    message = decode_error(reply).message if reply.status_code == 400 else ""
    if isinstance(message, str) and message.startswith("Insufficient credits."):
        return "failed", "insufficient_credits"
    return "failed", _REASONS.get(reply.status_code, f"http_{reply.status_code}")
