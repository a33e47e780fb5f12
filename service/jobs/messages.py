"""The messages on the jobs stream and on each job's reply stream.

Each stream entry carries one field, ``data``: the msgspec-JSON encoding of the struct below.
"""

from __future__ import annotations

from typing import Any

import msgspec

DATA_FIELD = b"data"


class JobMessage(msgspec.Struct, kw_only=True, frozen=True):
    """A job on ``Keys.jobs_stream``."""

    job_id: str
    """The job's id; also the generation record's primary key once it is charged."""
    user_id: str
    """The JWT ``sub`` of the caller; the account charged and the owner of the result."""
    model: str
    """The registry name of the model plugin, resolved and checked by the API."""
    prompt: str
    """The animation prompt, as sent."""
    source_key: str
    """The storage key of the source image (the spec's ``id``)."""
    duration: str
    """The effective duration (the request's, or the model's default), one the model offers."""
    project_id: str | None = None
    """The spec's optional ``projectId``, stored on the record."""
    options: dict[str, Any] = {}
    """Model-specific options passed through to the plugin."""
    reply_stream: str
    """Where the worker writes the job's single ``JobReply``."""
    attempt: int = 1
    """The submission attempt; redeliveries are counted by the consumer group, not here."""
    submitted_at: float
    """Unix time the API accepted the request (queue latency = start - submitted_at)."""
    idempotency_key: str | None = None
    """The client's ``Idempotency-Key``, stored on the record for audits."""


class JobReply(msgspec.Struct, kw_only=True, frozen=True):
    """The outcome on a job's reply stream: an HTTP status and the spec-shaped body."""

    job_id: str
    status_code: int
    """200 on success; otherwise the error's status (400, 413, 500, ...)."""
    body: dict[str, Any]
    """The spec's success body, or its error body ``{statusCode, message, error}``."""


_encoder = msgspec.json.Encoder()


def encode(message: JobMessage | JobReply) -> dict[bytes, bytes]:
    return {DATA_FIELD: _encoder.encode(message)}


def decode_job(fields: dict[bytes, bytes]) -> JobMessage:
    return msgspec.json.decode(fields[DATA_FIELD], type=JobMessage)


def decode_reply(fields: dict[bytes, bytes]) -> JobReply:
    return msgspec.json.decode(fields[DATA_FIELD], type=JobReply)
