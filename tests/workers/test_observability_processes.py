"""The deployment shape, observed: ``video-gen api`` and ``video-gen worker`` as processes.

One request id joins the API's access line to the worker's lines for its job; every line either
process writes is JSON (uvicorn's and the worker's included, no plain-text access line); the
worker's own ``/metrics`` and the API's show one success and one failure with exact values.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from service.core import db
from service.core.embedded_redis import free_port
from service.core.settings import Settings, project_root
from tests.conftest import REDIS_URL
from tests.factories import grant, image_request, seed_image, token_for
from tests.health.test_metrics import parse

SECRET = "test-secret-at-least-32-bytes-long-0123"


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", command], cwd=project_root(), env=env, stdout=out, stderr=out
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _ready(url: str, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 45
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            dead = [log.read_text()[-3000:] for proc, log in zip(procs, logs) if proc.poll() is not None]
            assert not dead, "a process died:\n" + "\n".join(dead)
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    assert "Logging error" not in text
    return [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON


async def test_request_id_logs_and_metrics_across_processes(sqlite_url: str, redis_prefix: str, tmp_path: Path) -> None:
    port, worker_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": sqlite_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "DEFAULT_MODEL": "local",
        "LOCAL_MODEL_WIDTH": "160",
        "LOCAL_MODEL_HEIGHT": "90",
        "LOCAL_MODEL_FPS": "8",
        "JWT_SECRET": SECRET,
        "PORT": str(port),
        "METRICS_PORT": str(worker_port),
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_FORMAT": "auto",  # not a terminal: JSON
        "LOG_LEVEL": "INFO",
        "EVENT_LOOP": "asyncio",
    }
    settings = Settings.from_env(env)
    await seed_image(settings)
    await seed_image(settings, name="not-an-image.png", data=b"plain text, not a picture")
    await db.connect(sqlite_url)
    try:
        await grant("u1", 750)
    finally:
        await db.disconnect()
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    procs = [_spawn("api", env, logs[0]), _spawn("worker", env, logs[1])]
    try:
        await _ready(f"http://127.0.0.1:{port}/health/ready", procs, logs)
        await _ready(f"http://127.0.0.1:{worker_port}/health", procs, logs)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            auth = {"Authorization": f"Bearer {token_for(settings, 'u1')}"}
            ok = await client.post(
                "/video-gen/image-to-video", json=image_request(), headers={**auth, "X-Request-ID": "trace-me-1"}
            )
            assert ok.status_code == 200, ok.text
            assert ok.headers["x-request-id"] == "trace-me-1"
            bad = await client.post(
                "/video-gen/image-to-video", json=image_request(id="images/u1/not-an-image.png"), headers=auth
            )
            assert bad.status_code == 400, bad.text
            api_metrics = parse((await client.get("/metrics")).text)
            worker_metrics = parse((await client.get(f"http://127.0.0.1:{worker_port}/metrics")).text)
    finally:
        _stop(procs)

    api_lines, worker_lines = _lines(logs[0]), _lines(logs[1])
    [access] = [e for e in api_lines if e["event"] == "http.request" and e.get("request_id") == "trace-me-1"]
    assert (access["method"], access["path"], access["status"]) == ("POST", "/video-gen/image-to-video", 200)
    assert len([e for e in api_lines if e["event"] == "http.request"]) == 2  # one line per request, not two
    assert any(e["logger"].startswith("uvicorn") for e in api_lines)  # uvicorn's own lines, as JSON
    [done] = [e for e in worker_lines if e["event"] == "job.done" and e["request_id"] == "trace-me-1"]
    assert done["user_id"] == "u1" and done["model"] == "local" and done["status"] == 200
    assert any(
        e["event"] == "job.done" and e["status"] == 400 and e["request_id"] != "trace-me-1" for e in worker_lines
    )

    def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert value(api_metrics, "video_gen_jobs_submitted_total", model="local") == 2
    assert value(worker_metrics, "video_gen_jobs_submitted_total", model="local") == 0  # the API counts those
    assert value(worker_metrics, "video_gen_jobs_finished_total", model="local", outcome="succeeded", reason="") == 1
    assert (
        value(worker_metrics, "video_gen_jobs_finished_total", model="local", outcome="failed", reason="invalid_input")
        == 1
    )
    assert value(worker_metrics, "video_gen_credits_debited_total", model="local") == 750
    assert value(worker_metrics, "video_gen_credits_refunded_total", model="local", reason="failure") == 0
    assert value(worker_metrics, "video_gen_provider_requests_total", model="local") == 1
    assert value(worker_metrics, "video_gen_generation_seconds_count", model="local") == 1
    assert value(worker_metrics, "video_gen_queue_wait_seconds_count", model="local") == 2
    assert value(api_metrics, "video_gen_queue_waiting") == 0
    assert value(api_metrics, "video_gen_queue_running") == 0
