"""The service's own Prometheus metrics (``video_gen_*``), in prometheus_client's default registry.

Each process counts what it does: the API the jobs it queues and the admins' refunds, a worker
the jobs it runs, their time, the provider calls and the credits. Every process serves its own
``/metrics`` (the API on its port, a worker on ``METRICS_PORT``) and Prometheus sums the
processes; no multiprocess mode is needed because no two processes share a port. The queue's
state is read from Redis by the API when it is scraped (``video_gen_queue_*``).

Labels stay bounded: a model name (installed plugins), an outcome, a reason class, an error type.
Never a user, a job or a prompt.

``jobs_finished_total`` counts the replies workers compute: a job whose reply was lost after it
finished (its worker died before acknowledging, and the reply expired) is answered again from its
record on redelivery and counted again. That is rare; the ledger, not this counter, is the record.
"""

from __future__ import annotations

import hmac

from prometheus_client import Counter, Gauge, Histogram

JOBS_SUBMITTED = Counter("video_gen_jobs_submitted", "Jobs queued by the API.", ["model"])
JOBS_FINISHED = Counter(
    "video_gen_jobs_finished",
    "Jobs a worker answered, by outcome (succeeded, failed) and reason class of a failure.",
    ["model", "outcome", "reason"],
)
GENERATION_SECONDS = Histogram(
    "video_gen_generation_seconds",
    "Time one model run took (the provider's queue and generation), successful or not.",
    ["model"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
QUEUE_WAIT_SECONDS = Histogram(
    "video_gen_queue_wait_seconds",
    "Time from the API accepting a job to a worker starting its first delivery.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
JOBS_RUNNING = Gauge("video_gen_jobs_running", "Model runs in progress in this process.", ["model"])
PROVIDER_REQUESTS = Counter(
    "video_gen_provider_requests", "Model runs started (one provider generation request each).", ["model"]
)
PROVIDER_ERRORS = Counter(
    "video_gen_provider_errors",
    "Model runs that failed, by type: rejected (the provider refused the input), failed, timeout, "
    "transient (retried), unexpected (any other exception).",
    ["model", "type"],
)
CREDITS_DEBITED = Counter("video_gen_credits_debited", "Credits charged for generations.", ["model"])
CREDITS_REFUNDED = Counter(
    "video_gen_credits_refunded", "Credits refunded, by reason (failure, cancel, admin).", ["model", "reason"]
)
QUEUE_WAITING = Gauge("video_gen_queue_waiting", "Jobs on the stream no worker has claimed yet (read at scrape).")
QUEUE_RUNNING = Gauge("video_gen_queue_running", "Jobs claimed and not yet acknowledged (read at scrape).")
QUEUE_OLDEST_WAITING_SECONDS = Gauge(
    "video_gen_queue_oldest_waiting_seconds", "Age of the oldest job no worker has claimed; 0 when none waits."
)
DEAD_LETTERS = Gauge("video_gen_dead_letters", "Entries on the dead-letter stream (read at scrape).")
LEDGER_VERIFICATIONS = Counter(
    "video_gen_ledger_verifications", "Ledger verifications run in this process, by result (ok, failed).", ["result"]
)
LEDGER_VIOLATIONS = Gauge(
    "video_gen_ledger_violations", "Violations the last ledger verification in this process found (0: balanced)."
)

WEBHOOK_ATTEMPTS = Counter(
    "video_gen_webhook_attempts",
    "Webhook attempts, by event and result: delivered (2xx), http_error (another status), timeout, error "
    "(connection, TLS, DNS), refused (an internal address).",
    ["event", "result"],
)
WEBHOOK_DELIVERIES_FINISHED = Counter(
    "video_gen_webhook_deliveries_finished",
    "Webhook deliveries that ended, by event and outcome (delivered, failed: its retries spent or refused).",
    ["event", "outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "video_gen_webhook_attempt_seconds",
    "Time one webhook attempt took, from resolving the host to the last byte read.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOKS_PENDING = Gauge(
    "video_gen_webhooks_pending", "Webhook deliveries queued or waiting for a retry (read at scrape)."
)


def authorized(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape may read ``/metrics``: always without ``METRICS_TOKEN``, else with
    ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time)."""
    if not token:
        return True
    return authorization is not None and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())
