"""Every Redis key name the service uses, in one place.

All keys share a prefix (``REDIS_KEY_PREFIX``, default ``video-gen``) so that several
deployments, or parallel test runs, can share one Redis without touching each other's keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "video-gen"

    @property
    def jobs_stream(self) -> str:
        """The jobs stream (XADD by the API, XREADGROUP by workers)."""
        return f"{self.prefix}:jobs"

    @property
    def jobs_group(self) -> str:
        """The workers' consumer group on the jobs stream."""
        return f"{self.prefix}:workers"

    @property
    def dead_letter_stream(self) -> str:
        """Jobs that could not be processed (unparseable, unknown model, too many deliveries)."""
        return f"{self.prefix}:jobs:dead"

    def reply_stream(self, job_id: str) -> str:
        """The job's own reply stream; one message, expires after ``REPLY_TTL_SECONDS``."""
        return f"{self.prefix}:reply:{job_id}"

    def job_meta(self, job_id: str) -> str:
        """Who owns a job and when it was submitted, until it has a database record."""
        return f"{self.prefix}:job:{job_id}"

    def idempotency(self, user_id: str, key: str) -> str:
        """The job id and body hash a user's ``Idempotency-Key`` maps to (24 h)."""
        return f"{self.prefix}:idem:{user_id}:{key}"

    def rate_limit(self) -> str:
        return f"{self.prefix}:ratelimit"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix (tests clean up with it)."""
        return f"{self.prefix}:*"
