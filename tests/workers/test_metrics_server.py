"""The worker's own endpoint: ``/metrics`` (behind the token when set) and the ``/health`` probe."""

from __future__ import annotations

import httpx

from service.core import metrics
from service.core.embedded_redis import free_port
from workers.metrics_server import start_metrics_server


async def test_metrics_health_and_token() -> None:
    alive = [True]
    port = free_port()
    server = await start_metrics_server("127.0.0.1", port, token="s3cret", alive=lambda: alive[0])
    metrics.PROVIDER_REQUESTS.labels("probe-test").inc()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
            r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            assert 'video_gen_provider_requests_total{model="probe-test"} 1.0' in r.text
            health = await client.get("/health")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            alive[0] = False
            assert (await client.get("/health")).status_code == 503
            assert (await client.get("/other")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
    finally:
        server.close()
        await server.wait_closed()
