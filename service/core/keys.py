"""Every Redis key name the service uses, in one place.

All keys share a prefix (``REDIS_KEY_PREFIX``, default ``video-gen``) so that several
deployments, or parallel test runs, can share one Redis without touching each other's keys.

| key                         | type   | written by        | lifetime                                  |
| --------------------------- | ------ | ----------------- | ----------------------------------------- |
| ``<p>:queue:<model>``       | stream | API (XADD)        | entries trimmed once acknowledged         |
| ``<p>:queues``              | set    | API, workers      | the models that have a jobs stream        |
| ``<p>:jobs``                | stream | before 2026-11    | drained by workers (legacy shared stream) |
| ``<p>:jobs:dead``           | stream | workers           | approximate MAXLEN ``DEAD_LETTER_MAXLEN`` |
| ``<p>:events``              | stream | workers, API      | approximate MAXLEN 100,000                |
| ``<p>:cancels``             | stream | API (cancel)      | approximate MAXLEN 10,000                 |
| ``<p>:inbox:<process>``     | stream | workers (notify)  | MAXLEN; expires an hour after its process |
| ``<p>:reply:<job>``         | string | workers (SET NX)  | ``REPLY_TTL_SECONDS``                     |
| ``<p>:job:<job>``           | string | API               | ``JOB_META_TTL_SECONDS``                  |
| ``<p>:idem:<user>:<key>``   | hash   | API, then workers | ``IDEMPOTENCY_TTL_SECONDS``               |
| ``<p>:ratelimit:*``         | -      | Litestar's store  | the rate limiter's own                    |
| ``<p>:webhooks:due``        | zset   | workers, admins   | a member per delivery until it is final   |
| ``<p>:webhook:<delivery>``  | string | workers, admins   | kept while pending; then ``WEBHOOK_RETENTION_SECONDS`` |
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Keys:
    prefix: str = "video-gen"

    def queue(self, model: str) -> str:
        """The jobs stream of one model (XADD by the API, XREADGROUP by the workers that have the
        model): a worker reads only the streams of models it has a free slot for."""
        return f"{self.prefix}:queue:{model}"

    @property
    def queues(self) -> str:
        """The models whose jobs stream exists (SADD at submit and by workers at start): what
        operators and the backlog read, without scanning the keyspace."""
        return f"{self.prefix}:queues"

    @property
    def legacy_jobs_stream(self) -> str:
        """The one jobs stream of every model, before the streams per model: workers move its
        undelivered entries to their models' streams and reclaim its pending ones until it is empty."""
        return f"{self.prefix}:jobs"

    @property
    def jobs_group(self) -> str:
        """The workers' consumer group, the same name on every jobs stream."""
        return f"{self.prefix}:workers"

    @property
    def dead_letter_stream(self) -> str:
        """Jobs that could not be processed (unparseable, unknown model)."""
        return f"{self.prefix}:jobs:dead"

    @property
    def events_stream(self) -> str:
        """Jobs' status and progress changes (XADD by workers and cancels); every API process
        reads them all, once, for its Server-Sent Events streams."""
        return f"{self.prefix}:events"

    @property
    def cancels_stream(self) -> str:
        """Cancelled job ids (XADD by the API's cancel); every worker process reads them all."""
        return f"{self.prefix}:cancels"

    def inbox(self, process: str) -> str:
        """An API process's inbox: workers notify it of the replies its waiting requests await."""
        return f"{self.prefix}:inbox:{process}"

    def reply(self, job_id: str) -> str:
        """The job's reply (written once, with its expiry); the job endpoint and replays read it."""
        return f"{self.prefix}:reply:{job_id}"

    def job_meta(self, job_id: str) -> str:
        """Who owns a job and when it was submitted, until it has a database record."""
        return f"{self.prefix}:job:{job_id}"

    def idempotency(self, user_id: str, key: str) -> str:
        """The job id and body hash a user's ``Idempotency-Key`` maps to.

        The user id is percent-encoded (``:`` included), so no two (user, key) pairs share a key.
        """
        return f"{self.prefix}:idem:{quote(user_id, safe='')}:{key}"

    @property
    def rate_limit(self) -> str:
        """The namespace of the rate limiter's counters (Litestar's Redis store)."""
        return f"{self.prefix}:ratelimit"

    @property
    def webhooks_due(self) -> str:
        """Webhook deliveries by the time (ms) their next attempt is due; a claimed one's score is
        pushed past its send timeout, so a dead sender's claim comes back by itself."""
        return f"{self.prefix}:webhooks:due"

    def webhook(self, delivery_id: str) -> str:
        """One webhook delivery: its event, target, payload and attempts (``WebhookDelivery``)."""
        return f"{self.prefix}:webhook:{delivery_id}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix (tests clean up with it)."""
        return f"{self.prefix}:*"
