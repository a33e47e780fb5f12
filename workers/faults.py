"""TEST-ONLY crash points for the fault-injection suite (``tests/faults``).

``VIDEO_GEN_CRASH_AT=<point>[:N]`` makes this worker process kill itself with SIGKILL (no
cleanup, no ack, no reply: what a crashed machine looks like) when the N-th job (default the
first) reaches ``<point>``. The points, in pipeline order:

- ``after_debit``: the generation row and its debit are committed, nothing generated yet;
- ``during_generation``: the model is working (its first progress report, or the provider's
  request id just saved);
- ``after_upload``: the video is in storage, the database does not say so yet;
- ``before_webhook``: the outcome is recorded, its webhook event is not queued yet;
- ``before_ack``: the webhook event is queued, the reply not written, the job not acknowledged.

Unset (production), ``crash_point`` does nothing but one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "VIDEO_GEN_CRASH_AT"
POINTS = ("after_debit", "during_generation", "after_upload", "before_webhook", "before_ack")

_seen: dict[str, list[str]] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    point, _, nth = raw.partition(":")
    if point not in POINTS:
        raise SystemExit(f"{ENV_VAR}={raw!r}: the point must be one of {', '.join(POINTS)}")
    return point, int(nth) if nth else 1


def crash_point(point: str, job_id: str) -> None:
    """SIGKILL this process if ``VIDEO_GEN_CRASH_AT`` names ``point`` and ``job_id`` is its N-th job."""
    target = _target()
    if target is None or target[0] != point:
        return
    jobs = _seen.setdefault(point, [])
    if job_id not in jobs:
        jobs.append(job_id)
    if len(jobs) == target[1] and jobs[-1] == job_id:
        os.kill(os.getpid(), signal.SIGKILL)
