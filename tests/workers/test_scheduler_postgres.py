"""The scheduler against a PostgreSQL that kills a connection in the middle of a transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.generations.task import GenerationTask
from service.jobs.messages import JobMessage, JobReply
from tests.factories import grant
from tests.workers.conftest import Redis, Schedulers, make_job
from tests.workers.test_scheduler import replied, until


class DyingTransactionTask:
    """The real task, after a first run whose transaction loses its connection mid-way (the
    backend terminated, as in a PostgreSQL restart): Piccolo then leaves that dead transaction as
    the task's current one, so the retry must run in a fresh task to reach the database at all."""

    def __init__(self, inner: GenerationTask, admin_url: str) -> None:
        self.inner, self.admin_url, self.calls = inner, admin_url, 0
        self.registry = inner.registry

    def accepts(self, job: JobMessage) -> bool:
        return self.inner.accepts(job)

    async def run(self, job: JobMessage, delivery: int, *args: Any) -> JobReply:
        import asyncpg

        from service.core import db
        from service.generations.tables import Generation

        self.calls += 1
        if self.calls == 1:
            admin = await asyncpg.connect(self.admin_url)
            try:
                async with db.write_transaction():
                    pid = (await Generation.raw("SELECT pg_backend_pid() AS pid"))[0]["pid"]
                    await admin.execute("SELECT pg_terminate_backend($1)", pid)
                    while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                        await asyncio.sleep(0.01)  # the backend is gone: the next query fails for sure
                    await Generation.raw("SELECT 1")
            finally:
                await admin.close()
        return await self.inner.run(job, delivery, *args)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_transaction_killed_by_the_database_does_not_poison_the_retry(
    schedulers: Schedulers, rds: Redis, seeded, task: GenerationTask, database_url: str
) -> None:
    await grant("u1", 1000)
    job = make_job(seeded)
    await rds.queue(job)
    dying = DyingTransactionTask(task, database_url)
    schedulers.run("a", task=dying)
    reply = await until(replied(rds, job), "the reply")
    assert reply.status_code == 200
    assert dying.calls == 2
