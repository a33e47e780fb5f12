"""``video-gen probe api|worker``, the containers' health checks, against a running stack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from service.core.settings import Settings
from service.health.probe import probe_api, probe_worker
from tests.conftest import Api, make_settings


@pytest.fixture
def settings(sqlite_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    return make_settings(sqlite_url, redis_prefix, tmp_path)


async def test_healthy_api_and_worker(api: Api) -> None:
    ok, detail = await asyncio.to_thread(probe_api, api.settings)  # the server runs on this loop
    assert ok, detail
    # The embedded stack's workers are named embedded-<n> where a process would be <host>-<pid>.
    ok, detail = await probe_worker(api.settings, host="embedded")
    assert ok, detail
    assert "last spoke" in detail


async def test_no_worker_no_api(settings: Settings) -> None:
    ok, detail = probe_api(settings)
    assert not ok and "/health/ready" in detail
    ok, detail = await probe_worker(settings)
    assert not ok and f"{settings.redis_key_prefix}:worker:" in detail


async def test_unreachable_redis(settings: Settings) -> None:
    ok, detail = await probe_worker(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert not ok and "Redis unreachable" in detail


def test_probe_command_exit_status(settings: Settings) -> None:
    """The command a HEALTHCHECK runs: exit 1 and a one-line reason when nothing answers."""
    env = {"REDIS_URL": settings.redis_url or "", "REDIS_KEY_PREFIX": settings.redis_key_prefix, "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "probe", "worker"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("worker UNHEALTHY: no Redis connection named")
