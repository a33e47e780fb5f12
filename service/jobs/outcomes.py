"""A job's outcome as the spec shows it, built from its generation record.

Shared by the worker (the reply it writes) and the API (``GET /video-gen/jobs/{id}`` once the
reply has expired), so both say the same thing about the same record.
"""

from __future__ import annotations

from typing import Any

from service.core.errors import AppError
from service.generations.schemas import format_duration
from service.jobs.messages import JobReply
from service.ledger import service as ledger

TERMINAL = ("succeeded", "failed")
GENERIC_FAILURE = "Image-to-video generation failed"


def error_reply(job_id: str, exc: AppError) -> JobReply:
    return JobReply(job_id=job_id, status_code=exc.status_code, body=exc.body())


def generation_time_ms(record: dict[str, Any]) -> int:
    return int(record.get("generation_ms") or 0)


async def reply_from_record(record: dict[str, Any]) -> JobReply:
    """The spec's success body (with the user's current balance) or its error body."""
    if record["status"] == "failed":
        err = AppError(record["error"] or GENERIC_FAILURE, record["error_status"] or 500)
        return error_reply(record["id"], err)
    body = {
        "success": True, "s3Key": record["output_key"], "model": record["model"],
        "credits": {"used": int(record["credits_charged"]),
                    "balance": float(await ledger.balance_of(record["user_id"]))},
        "duration": format_duration(record["duration_seconds"]), "generationTime": generation_time_ms(record),
    }
    return JobReply(job_id=record["id"], status_code=200, body=body)
