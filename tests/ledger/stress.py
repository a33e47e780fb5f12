"""A randomized driver of concurrent money operations, runnable in the test's process and as a
second OS process (``python -m tests.ledger.stress DATABASE_URL SEED``, printing JSON).

Many asyncio tasks grant, charge, succeed, fail (refunded in the same transaction, as the workers do),
refund as an admin, deduct, and retry what must happen only once, over a few shared accounts.
Each task keeps its own account of what the ledger said it did, so the test can compare the sum
of those with the balances the database ends with.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from collections import Counter

from service.admin.service import refund_generation as admin_refund
from service.core.errors import AppError, Conflict, InsufficientCredits
from service.generations import settlement, transitions
from service.generations.records import GenerationRecord
from service.generations.settlement import AlreadyExists
from service.generations.status import GenerationStatus
from service.ledger import service as ledger
from tests.factories import charge

USERS = [f"stress-{i}" for i in range(6)]


async def _generation(rng: random.Random, user: str, net: Counter[str], stats: Counter[str]) -> None:
    """Charge one generation, then take it to a random end, retrying the once-only steps."""
    gid, cost = uuid.uuid4().hex, rng.choice([50, 120, 300, 750])
    try:
        record = (await charge(gid, user, cost, project_id=None)).record
    except InsufficientCredits:
        stats["insufficient"] += 1
        return
    net[user] -= cost
    stats["charged"] += 1
    try:  # a redelivered job must not charge again
        await charge(gid, user, cost, project_id=None)
        raise AssertionError("charged twice")
    except AlreadyExists:
        pass
    await asyncio.sleep(rng.random() / 200)
    end = rng.choice(["succeed", "fail", "fail", "admin_refund", "running"])
    if end == "succeed":
        await transitions.succeed(record, output_key=f"videos/{user}/{gid}.mp4", duration_seconds=5.0, generation_ms=10)
    elif end == "fail":  # two deliveries race to fail it: one refund, one FAILED record
        results = await asyncio.gather(_fail(record), _fail(record))
        assert all(r.status is GenerationStatus.FAILED and r.credits_refunded == cost for r in results), results
        net[user] += cost
    elif end == "admin_refund":
        refunds = [_admin_refund(gid), _admin_refund(gid)]
        results = await asyncio.gather(*refunds, return_exceptions=True)
        assert sum(r is True for r in results) == 1, results
        assert all(r is True or isinstance(r, Conflict) for r in results), results
        net[user] += cost
    stats[end] += 1


async def _fail(record: GenerationRecord) -> GenerationRecord:
    return await settlement.fail(record, AppError("boom", 500))


async def _admin_refund(gid: str) -> bool:
    await admin_refund("admin-stress", gid, "customer complaint")
    return True


async def _task(seed: int, ops: int, net: Counter[str], stats: Counter[str]) -> None:
    rng = random.Random(seed)
    for _ in range(ops):
        user, op = rng.choice(USERS), rng.random()
        if op < 0.25:
            amount = rng.randint(1, 900)
            await ledger.grant(user, amount, actor="admin-stress", reason="top-up")
            net[user] += amount
            stats["granted"] += 1
        elif op < 0.33:
            amount = rng.randint(1, 200)
            try:
                await ledger.deduct(user, amount, actor="admin-stress", reason="correction")
                net[user] -= amount
                stats["deducted"] += 1
            except InsufficientCredits:
                stats["insufficient"] += 1
        else:
            await _generation(rng, user, net, stats)


async def drive(seed: int, *, tasks: int = 24, ops: int = 12) -> tuple[Counter[str], Counter[str]]:
    """Run ``tasks`` concurrent tasks of ``ops`` operations; returns (net credits per user, stats)."""
    net: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    await asyncio.gather(*(_task(seed * 1000 + i, ops, net, stats) for i in range(tasks)))
    return net, stats


async def _main(url: str, seed: int) -> None:
    from service.core import db

    await db.connect(url, pool_size=10)
    print("ready", flush=True)  # the test starts its own storm now, so both overlap
    try:
        net, stats = await drive(seed)
    finally:
        await db.disconnect()
    print(json.dumps({"net": dict(net), "stats": dict(stats)}))


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2])))
