"""``Idempotency-Key``: a request carrying the header is done once per user and key.

The first request with a key stores, atomically with queueing its job, a Redis hash at
``Keys.idempotency(user, key)`` (expires after ``IDEMPOTENCY_TTL_SECONDS``, 24 h by default):

| field        | value                                                                    |
| ------------ | ------------------------------------------------------------------------ |
| ``job_id``   | the job the key is bound to                                              |
| ``body_hash``| SHA-256 of the request body (canonical JSON, keys sorted)                |
| ``created_at``| Unix time of the first request                                          |
| ``reply``    | the job's ``JobReply`` (msgspec JSON), copied by the worker with the reply |

A retry with the same key and body gets the first job's outcome (waiting for it while it runs);
the same key with another body is a 422. Keys are scoped to the caller: two users may use the
same key. A request refused before queueing (400 validation, 503) binds nothing, so its retry
runs afresh.
"""

from __future__ import annotations

import hashlib

import msgspec

from service.core.errors import BadRequest, IdempotencyMismatch
from service.jobs.messages import JobReply, decode_reply

MAX_KEY_LENGTH = 255

# The hash's field names (workers write REPLY_FIELD, through ``JobStream.complete``).
JOB_ID_FIELD = "job_id"
BODY_HASH_FIELD = "body_hash"
CREATED_AT_FIELD = "created_at"
REPLY_FIELD = "reply"


class IdempotencyRecord(msgspec.Struct, frozen=True):
    """What one user's Idempotency-Key is bound to."""

    job_id: str
    body_hash: str
    created_at: float
    reply: JobReply | None = None


def check_key(key: str) -> str:
    """The key as sent, or a spec-shaped 400 when it is empty, too long or not printable ASCII."""
    if not key or len(key) > MAX_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces")
    return key


def body_hash(body: object) -> str:
    """A stable digest of a request body (a msgspec Struct or builtins): same body, same hash."""
    canonical = msgspec.json.encode(msgspec.to_builtins(body), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def parse(raw: dict[bytes, bytes] | list[bytes] | None) -> IdempotencyRecord | None:
    """A record from HGETALL's answer (a dict, or the flat list a Lua script returns)."""
    if not raw:
        return None
    if isinstance(raw, list):
        raw = dict(zip(raw[::2], raw[1::2], strict=False))
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if JOB_ID_FIELD not in fields:
        return None
    reply = fields.get(REPLY_FIELD)

    def text(name: str) -> str:
        value = fields.get(name, b"")
        return value.decode() if isinstance(value, bytes) else str(value)

    return IdempotencyRecord(
        job_id=text(JOB_ID_FIELD),
        body_hash=text(BODY_HASH_FIELD),
        created_at=float(text(CREATED_AT_FIELD) or 0),
        reply=decode_reply(reply) if reply else None,
    )


def mismatch(key: str) -> IdempotencyMismatch:
    """The 422 for a key reused with a different body."""
    return IdempotencyMismatch(
        f"Idempotency-Key {key} was already used with a different request body; use a new key for a new request"
    )
