"""The fast subset of the fault-injection suite (``just faults`` runs them all): a worker
SIGKILLed right after the debit, and Redis SIGKILLed and restarted from its append-only file,
each against real API and worker processes, a private redis-server and a fresh PostgreSQL database.
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import FAST, run


@pytest.mark.parametrize("scenario", FAST)
async def test_fault_scenario(scenario: str, postgres_url: str) -> None:  # postgres_url: skip without PostgreSQL
    (result,) = await run([scenario])
    assert result.ok, "\n".join([f"{result.scenario}: {result.events}", *result.problems, f"logs: {result.logs}"])
