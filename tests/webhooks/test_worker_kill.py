"""A worker SIGKILLed after the outcome is recorded and before its webhook is queued: real API
and worker processes, a private redis-server, PostgreSQL. The webhook still arrives, as one
logical event. (``just faults`` also kills one after the event is queued, before the ack.)"""

from __future__ import annotations

from tests.faults.scenarios import run


async def test_a_worker_killed_before_queueing_the_webhook_loses_nothing(postgres_url: str) -> None:  # needs PG
    (result,) = await run(["webhook-kill-before-webhook"])
    assert result.ok, "\n".join([f"{result.scenario}: {result.events}", *result.problems, f"logs: {result.logs}"])
