"""``/metrics`` of the API after a success, a failure with its refund, a refused request and an
admin's refund: the ``video_gen_*`` series and their values (as differences: the registry is the
process's, shared by every test), the queue read from Redis at scrape time, and the token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from service.core import metrics
from service.core.keys import Keys
from service.embedded import embedded_stack
from service.health.metrics import read_queue
from service.jobs.stream import JobStream
from tests.conftest import Api, make_settings
from tests.factories import TestModels, bury_job, grant, image_request, job_message, make_generation, seed_image

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_jobs_credits_and_provider_series_after_success_failure_and_refunds(api: Api) -> None:
    await seed_image(api.settings)
    await grant("u1", 3 * 750)
    before = await scrape(api.client)
    ok = await api.client.post("/video-gen/image-to-video", json=image_request(), headers=api.auth("u1"))
    assert ok.status_code == 200, ok.text
    failed = await api.client.post(
        "/video-gen/image-to-video", json=image_request(model="failing"), headers=api.auth("u1")
    )
    assert failed.status_code == 500, failed.text
    charged = await make_generation("u1", cost=750)
    refund = await api.client.post(
        f"/admin/generations/{charged}/refund", json={"reason": "black video"}, headers=api.auth("a", roles=["admin"])
    )
    assert refund.status_code == 200, refund.text
    await grant("u2", 100)
    await seed_image(api.settings, user_id="u2")
    poor = await api.client.post(
        "/video-gen/image-to-video", json=image_request(id="images/u2/source-image.png"), headers=api.auth("u2")
    )
    assert poor.status_code == 400, poor.text
    after = await scrape(api.client)

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    assert d("video_gen_jobs_submitted_total", model="local") == 2
    assert d("video_gen_jobs_submitted_total", model="failing") == 1
    assert d("video_gen_jobs_finished_total", model="local", outcome="succeeded", reason="") == 1
    assert d("video_gen_jobs_finished_total", model="failing", outcome="failed", reason="generation_failed") == 1
    assert d("video_gen_jobs_finished_total", model="local", outcome="failed", reason="insufficient_credits") == 1
    assert d("video_gen_credits_debited_total", model="local") == 2 * 750  # the success; the one refunded by hand
    assert d("video_gen_credits_debited_total", model="failing") == 750
    assert d("video_gen_credits_refunded_total", model="failing", reason="failure") == 750
    assert d("video_gen_credits_refunded_total", model="local", reason="admin") == 750
    assert d("video_gen_provider_requests_total", model="local") == 1
    assert d("video_gen_provider_requests_total", model="failing") == 1
    assert d("video_gen_provider_errors_total", model="failing", type="unexpected") == 1
    assert d("video_gen_provider_errors_total", model="local", type="unexpected") == 0
    assert d("video_gen_generation_seconds_count", model="local") == 1
    assert d("video_gen_generation_seconds_sum", model="local") > 0
    assert d("video_gen_queue_wait_seconds_count", model="local") == 2
    assert after[("video_gen_jobs_running", frozenset({("model", "local")}))] == 0
    # Litestar's HTTP metrics are there too, under the same prefix
    assert any(name.startswith("video_gen_requests_total") for name, _ in after)


async def test_http_series_count_each_request_by_route_template_and_status(api: Api) -> None:
    before = await scrape(api.client)
    missing = await api.client.get("/video-gen/jobs/nope", headers=api.auth("u1"))
    assert missing.status_code == 404, missing.text
    after = await scrape(api.client)
    route = {"method": "GET", "path": "/video-gen/jobs/{job_id}", "app_name": "video_gen"}
    assert delta(before, after, "video_gen_requests_total", status_code="404", **route) == 1
    assert delta(before, after, "video_gen_request_duration_seconds_count", status_code="404", **route) == 1
    assert delta(before, after, "video_gen_request_duration_seconds_sum", status_code="404", **route) > 0
    assert after[("video_gen_requests_in_progress", frozenset({**route, "status_code": "200"}.items()))] == 0
    scrapes = [
        labels for name, labels in after if name == "video_gen_requests_total" and ("path", "/metrics") in labels
    ]
    assert scrapes == []  # excluded


async def test_the_queue_is_read_from_redis_at_scrape_time(api: Api) -> None:
    stream: JobStream = api.stack.server.config.app.state["stream"]
    await bury_job(stream, job_message(model="gone"))
    samples = await scrape(api.client)
    assert samples[("video_gen_dead_letters", frozenset())] == 1
    assert samples[("video_gen_queue_waiting", frozenset())] == 0
    assert samples[("video_gen_queue_oldest_waiting_seconds", frozenset())] == 0


async def test_waiting_jobs_and_their_age(redis_client: Redis, redis_prefix: str) -> None:
    stream = JobStream(redis_client, Keys(redis_prefix), reply_ttl=60, meta_ttl=60, idempotency_ttl=60)
    await stream.ensure_groups(["local"])
    for _ in range(3):
        await stream.submit(job_message())
    await read_queue(stream)
    assert metrics.QUEUE_WAITING._value.get() == 3  # no worker in this test: all three wait
    assert metrics.QUEUE_RUNNING._value.get() == 0
    assert 0 <= metrics.QUEUE_OLDEST_WAITING_SECONDS._value.get() < 60


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_metrics_token_guards_the_endpoint(database_url: str, redis_prefix: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, redis_prefix, tmp_path, metrics_token="scrape-me")
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url) as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
                r = await client.get("/metrics", headers=headers)
                assert r.status_code == 401
                assert r.json() == {
                    "statusCode": 401,
                    "message": "A valid metrics token is required",
                    "error": "Unauthorized",
                }
            assert (
                "video_gen_jobs_submitted"
                in (await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).text
            )
