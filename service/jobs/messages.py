"""The messages of the jobs protocol, one struct per stream, and how they are encoded.

Every stream entry carries one field, ``data``: the msgspec-JSON encoding of its struct.

| where                          | struct        |
| ------------------------------ | ------------- |
| ``Keys.queue(model)``          | ``JobMessage`` |
| ``Keys.inbox(process)``        | ``JobReply``  (also the value of ``Keys.reply(job)``) |
| ``Keys.dead_letter_stream``    | ``DeadLetter`` |
| ``Keys.events_stream``         | ``JobEvent`` |
| ``Keys.cancels_stream``        | none: ``data`` is the cancelled job's id, as text |

``Delivery`` is what a worker receives: one entry of a jobs stream with its delivery count;
``EntryRef`` names the entry (stream and id: ids are unique only within one stream).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

DATA_FIELD = b"data"


class JobMessage(msgspec.Struct, kw_only=True, frozen=True):
    """A job on the jobs stream."""

    job_id: str
    """The job's id; also the generation record's primary key once it is charged."""
    user_id: str
    """The JWT ``sub`` of the caller: the account charged and the owner of the result."""
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
    """Model-specific options, already checked by the API."""
    inbox: str | None = None
    """The inbox stream of the API process waiting for the reply; None when nobody waits."""
    submitted_at: float
    """Unix time the API accepted the request (time in queue = start - submitted_at)."""
    idempotency_key: str | None = None
    """The client's ``Idempotency-Key``: its record gets a copy of the reply."""
    request_id: str | None = None
    """The id of the HTTP request that submitted the job (its ``X-Request-ID``): the worker binds
    it to every log line of the job, so one id joins the API's lines to the worker's."""
    trace_context: dict[str, str] = {}
    """The W3C trace context (``traceparent``, ``tracestate``) of the request that queued the job:
    the worker's spans join that request's trace. Empty when tracing is off."""
    webhook_url: str | None = None
    """Where the job's outcome is POSTed (checked by the API); None: no webhook."""
    webhook_events: list[str] | None = None
    """The events the client subscribed to; None: all of them."""


class JobReply(msgspec.Struct, kw_only=True, frozen=True):
    """A job's outcome: the HTTP status and body the request that submitted it answers."""

    job_id: str
    status_code: int
    """200 on success; otherwise the error's status (400, 404, 413, 500, ...)."""
    body: msgspec.Raw
    """The response body, already JSON: the spec's success body or its error body. The transport
    never looks inside; the API sends these bytes as they are."""


class JobEvent(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A change in a job's life, for the API processes following it (Server-Sent Events)."""

    job_id: str
    status: str
    """``running`` (charged, or progressing) or ``done`` (its reply is written: read the outcome)."""
    progress: dict[str, Any] | None = None
    """The progress report (the job view's ``progress``), when this is one."""
    id: str = ""
    """Its id on the events stream (set when read; not stored)."""


class EntryRef(NamedTuple):
    """One entry of one jobs stream: what is renewed, acknowledged and dead-lettered."""

    stream: str
    """The jobs stream's key (``Keys.queue(model)``, or the legacy shared one)."""
    message_id: str


class Delivery(msgspec.Struct, kw_only=True):
    """One entry of a jobs stream as a worker claimed it."""

    stream: str
    """The jobs stream it was read from (its acknowledgement names it)."""
    message_id: str
    """The stream entry's id (unique within its stream)."""
    count: int
    """Deliveries of this entry so far, this one included (1 for a fresh job)."""
    job: JobMessage | None
    """The decoded job; None when the entry is not a valid ``JobMessage``."""
    data: bytes = b""
    """The entry's raw ``data`` field, kept for the dead-letter stream."""
    error: str | None = None
    """Why ``job`` is None."""

    @property
    def ref(self) -> EntryRef:
        return EntryRef(self.stream, self.message_id)


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """An entry taken off a jobs stream without running: why, and what it held."""

    message_id: str
    """Its id on its jobs stream."""
    reason: str
    """Why it was not run (unparseable, unknown model ...)."""
    data: str
    """The entry's ``data`` field as it was (at most 64 KiB of it)."""
    job_id: str | None = None
    """The job it named, when it could be read."""
    dead_at: float = 0.0
    """Unix time it was dead-lettered."""
    stream: str | None = None
    """The jobs stream it was taken off (None in letters written before the streams per model)."""


_encoder = msgspec.json.Encoder()
_job = msgspec.json.Decoder(JobMessage)
_reply = msgspec.json.Decoder(JobReply)
_dead = msgspec.json.Decoder(DeadLetter)
_event = msgspec.json.Decoder(JobEvent)


def encode(message: JobMessage | JobReply | DeadLetter | JobEvent) -> bytes:
    return _encoder.encode(message)


def decode_job(data: bytes) -> JobMessage:
    return _job.decode(data)


def decode_reply(data: bytes) -> JobReply:
    return _reply.decode(data)


def decode_event(data: bytes, event_id: str) -> JobEvent:
    return msgspec.structs.replace(_event.decode(data), id=event_id)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _dead.decode(data)


def delivery(stream: str, message_id: str, fields: dict[bytes, bytes], count: int) -> Delivery:
    """A ``Delivery`` from a stream entry; a job that does not decode is kept with the reason."""
    data = fields.get(DATA_FIELD, b"")
    try:
        return Delivery(stream=stream, message_id=message_id, count=count, job=decode_job(data), data=data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Delivery(
            stream=stream,
            message_id=message_id,
            count=count,
            job=None,
            data=data,
            error=f"unparseable job message: {exc}" if data else "unparseable job message: no data field",
        )
