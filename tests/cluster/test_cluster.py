"""The fast subset of ``just cluster-test``: compose's topology as processes (2 APIs, 3 workers,
Redis with AOF, a fresh PostgreSQL database, moto's S3 server, the migration), requests spread
over both APIs, then the audit (every job answered 200, none charged twice, nothing left in Redis,
``video-gen ledger verify`` clean) and a download link that names the public S3 endpoint.
``just cluster-test`` restarts every worker and every API under load (about a minute more here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cluster.load import Load, audit, public_link
from tests.cluster.topology import SERVICES, topology

ROOT = Path(__file__).resolve().parents[2]


def test_the_topology_is_composes() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    default = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert default == {"seaweedfs" if s == "s3" else s for s in SERVICES}
    assert compose["services"]["api"]["deploy"]["replicas"] == 2
    assert compose["services"]["worker"]["deploy"]["replicas"] == 3


async def test_requests_spread_over_both_apis(postgres_url: str) -> None:  # skip without PostgreSQL
    async with topology() as top:
        assert top.services() == set(SERVICES)
        assert len(top.running("api")) == 2 and len(top.running("worker")) == 3
        load = Load(top, ["cluster-a", "cluster-b"])
        try:
            await load.setup(credits=750 * 100)
            await load.run(12, in_flight=4)
            result = await audit(load)
            top.keep = not result.ok
            assert result.ok, "\n".join([result.summary, *result.problems, f"logs: {top.dir}"])
            url, video = await public_link(load, next(j for j in load.jobs if j.status == 200))
            assert url.startswith(top.env["S3_PUBLIC_ENDPOINT_URL"] + "/videos/")
            assert video[4:8] == b"ftyp"  # an MP4
        finally:
            await load.close()
