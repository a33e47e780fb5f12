"""The generation record: the job's durable state and the user's history.

A row is created in the same transaction as the debit, so a generation exists if and only if it
was charged. ``status`` is a ``GenerationStatus`` (see ``status.py`` for its transitions).
"""

from piccolo.columns import JSON, BigInt, Integer, Real, Text, Timestamptz, Varchar
from piccolo.table import Table

from service.generations.status import GenerationStatus


class Generation(Table, tablename="generations"):
    id = Varchar(length=64, primary_key=True)
    user_id = Varchar(length=255, index=True)
    project_id = Varchar(length=255, null=True, default=None, index=True)
    model = Varchar(length=100, index=True)
    prompt = Text()
    source_key = Text()
    requested_duration = Varchar(length=16)
    duration_seconds = Real(null=True, default=None)  # the stored video's probed length
    status = Varchar(length=16, choices=GenerationStatus)  # not indexed: see the trigger_plans migration
    output_key = Text(null=True, default=None)
    credits_charged = BigInt(default=0)
    credits_refunded = BigInt(default=0)
    provider_request_id = Varchar(length=255, null=True, default=None)
    progress = JSON(default="{}")
    attempts = Integer(default=1)
    error = Text(null=True, default=None)
    error_status = Integer(null=True, default=None)
    idempotency_key = Varchar(length=255, null=True, default=None)
    generation_ms = BigInt(null=True, default=None)
    created_at = Timestamptz(index=True)
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
