"""The generation's states, named once.

A generation record exists only once it is charged (the row and its debit are one transaction),
so its life in the database is short:

```
(no record) --charge--> RUNNING --succeed--> SUCCEEDED
     |                     |
     |                     +--fail (refund in the same transaction)--> FAILED
     |                     |
     |                     +--cancel (refund in the same transaction)--> CANCELLED
     +--cancel (nothing charged)--> CANCELLED
```

``RUNNING`` covers generating, storing, and waiting to be resumed after a worker died: what was
done is read from the record (a provider request id) and from storage (a stored video), never
from an intermediate status. There is no "failing" state: the failure, its refund and the
terminal status commit together or not at all. A cancel is the same: the client's (or an
admin's) cancel moves RUNNING to CANCELLED with its refund in one transaction, and a job cancelled
before any worker charged it gets a CANCELLED record with nothing charged, which the worker's
charge then finds (its insert conflicts) instead of running. Every transition out of RUNNING
changes the record only from RUNNING, so a cancel racing a success or a failure ends with one
outcome, and the refund's unique key makes it at most one refund.

A client sees the job's status (``JobStatus``), which adds ``queued``: accepted, not yet charged,
known only to Redis.
"""

from __future__ import annotations

from enum import StrEnum


class GenerationStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[GenerationStatus] = frozenset(
    {GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.CANCELLED}
)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
