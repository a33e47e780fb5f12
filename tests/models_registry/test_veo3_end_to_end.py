"""Veo3 end to end: the API, a ``video-gen worker`` process and fal-client's real code, against the
fake fal queue served over HTTPS by another process (``FAL_QUEUE_RUN_HOST`` + a test CA)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from msgspec.structs import replace

from models_registry.video import probe_video
from service.core.embedded_redis import free_port
from service.embedded import embedded_stack
from service.generations import repository as generations
from service.ledger import service as ledger
from tests.factories import grant, seed_image, token_for
from tests.fakes.fal_queue import start_fal_server
from tests.health.test_metrics import parse

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.subprocess_server, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture(scope="module")
def fal_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base_url, ca_path, stop = start_fal_server(tmp_path_factory.mktemp("fal"))
    yield base_url, ca_path
    stop()


@pytest.fixture
def veo3_settings(settings, fal_https, monkeypatch):
    # The plugins read FAL_* when the registry creates them: the API's (in this process) and the
    # worker's (its environment, below). With a key, veo3 is the default model.
    monkeypatch.setenv("FAL_KEY", "test-key")
    return replace(settings, default_model=None)


@pytest.fixture
def worker(veo3_settings, fal_https) -> Iterator[subprocess.Popen[bytes]]:
    """One ``video-gen worker`` process configured only through the environment, as deployed."""
    base_url, ca_path = fal_https
    host = base_url.removeprefix("https://")
    s = veo3_settings
    env = {
        **os.environ,
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "REDIS_KEY_PREFIX": s.redis_key_prefix,
        "STORAGE_URL": s.storage_url,
        "FAL_KEY": "test-key",
        "FAL_POLL_SECONDS": "0.05",
        "JWT_SECRET": s.jwt_secret,
        "FAL_QUEUE_RUN_HOST": host,
        "FAL_RUN_HOST": host,
        "SSL_CERT_FILE": str(ca_path),
        "WORKER_CONCURRENCY": "2",
        "LOG_LEVEL": "WARNING",
        "METRICS_PORT": str(free_port()),
    }
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], cwd=ROOT, env=env)
    proc.metrics_url = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_the_spec_request_runs_on_veo3_through_fal(veo3_settings, worker) -> None:
    s = veo3_settings
    async with embedded_stack(s, workers=0) as stack:
        await seed_image(s)
        await grant("u1", 900)
        auth = {"Authorization": f"Bearer {token_for(s, 'u1')}"}
        body = {
            "id": "images/u1/source-image.png",
            "prompt": "A beautiful sunset over the ocean with gentle waves",
            "duration": "5s",
            "projectId": "project-456",
        }
        async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
            r = await client.post("/video-gen/image-to-video", json=body, headers=auth)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["model"] == "veo3" and answer["duration"] == "5s"
        assert answer["credits"] == {"used": 750, "balance": 150.0}
        info = probe_video(Path(s.storage_url.removeprefix("file://")) / answer["s3Key"])
        assert abs(info.duration_seconds - 5.0) < 0.01  # fal's 6 s, trimmed honestly
        record = await generations.get(answer["s3Key"].rsplit("/", 1)[1].removesuffix(".mp4"))
        assert record is not None and record.provider_request_id


async def test_a_content_policy_refusal_is_a_client_error_and_refunded(veo3_settings, worker) -> None:
    s = veo3_settings
    async with embedded_stack(s, workers=0) as stack:
        await seed_image(s)
        await grant("u1", 750)
        auth = {"Authorization": f"Bearer {token_for(s, 'u1')}"}
        body = {"id": "images/u1/source-image.png", "prompt": "[policy] something forbidden"}
        async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
            r = await client.post("/video-gen/image-to-video", json=body, headers=auth)
            scrape = parse((await client.get(worker.metrics_url)).text)  # the worker process's own
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith("Veo3 rejected the request:")
        assert await ledger.balance_of("u1") == 750

        def value(name: str, **labels: str) -> float:
            return scrape.get((name, frozenset(labels.items())), 0.0)

        assert value("video_gen_credits_debited_total", model="veo3") == 750
        assert value("video_gen_credits_refunded_total", model="veo3", reason="failure") == 750
        assert value("video_gen_jobs_finished_total", model="veo3", outcome="failed", reason="invalid_input") == 1
        assert value("video_gen_provider_requests_total", model="veo3") == 1
        assert value("video_gen_provider_errors_total", model="veo3", type="rejected") == 1
        assert value("video_gen_jobs_running", model="veo3") == 0


async def test_veo31_with_options_is_priced_by_them_and_sends_them_to_fal(veo3_settings, worker) -> None:
    s = veo3_settings
    async with embedded_stack(s, workers=0) as stack:
        await seed_image(s)
        await grant("u1", 1500)
        auth = {"Authorization": f"Bearer {token_for(s, 'u1')}"}
        body = {
            "id": "images/u1/source-image.png",
            "prompt": "A lighthouse in a storm, with its foghorn",
            "model": "veo3.1",
            "duration": "6s",
            "options": {"resolution": "1080p", "generate_audio": True},
        }
        async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
            catalogue = (await client.get("/video-gen/models", headers=auth)).json()["models"]
            r = await client.post("/video-gen/image-to-video", json=body, headers=auth)
        veo31 = next(m for m in catalogue if m["name"] == "veo3.1")
        assert veo31["available"] and veo31["unavailableReason"] is None
        listed = {
            (p["duration"], p["options"]["resolution"], p["options"]["generate_audio"]): p["cost"]
            for p in veo31["prices"]
        }
        assert listed[("6s", "1080p", True)] == 1200
        assert next(m for m in catalogue if m["default"])["name"] == "veo3"
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["model"] == "veo3.1" and answer["duration"] == "6s"
        assert answer["credits"] == {"used": 1200, "balance": 300.0}
        info = probe_video(Path(s.storage_url.removeprefix("file://")) / answer["s3Key"])
        assert abs(info.duration_seconds - 6.0) < 0.01
