"""The generation's states, named once.

A generation record exists only once it is charged (the row and its debit are one transaction),
so its life in the database is short:

```
(no record) --charge--> RUNNING --succeed--> SUCCEEDED
                           |
                           +--fail (refund in the same transaction)--> FAILED
```

``RUNNING`` covers generating, storing, and waiting to be resumed after a worker died: what was
done is read from the record (a provider request id) and from storage (a stored video), never
from an intermediate status. There is no "failing" state: the failure, its refund and the
terminal status commit together or not at all.

A client sees the job's status (``JobStatus``), which adds ``queued``: accepted, not yet charged,
known only to Redis.
"""

from __future__ import annotations

from enum import StrEnum


class GenerationStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL: frozenset[GenerationStatus] = frozenset({GenerationStatus.SUCCEEDED, GenerationStatus.FAILED})


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


JOB_TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})
