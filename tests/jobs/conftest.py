"""Fixtures for the jobs API: the whole stack with the scripted test model, with settings a test
chooses, and helpers to poll a job until it is terminal (timeouts are safety nets only)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.core.settings import Settings
from service.embedded import embedded_stack
from tests.conftest import Api, make_settings
from tests.workers.models import ScriptedModel, registry


class JobsApi(Api):
    @property
    def app_state(self) -> Any:
        return self.stack.server.config.app.state

    async def post(
        self, body: dict[str, Any], *, user: str = "u1", headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/video-gen/image-to-video", json=body, headers={**self.auth(user), **(headers or {})}, **kwargs
        )

    async def job(self, job_id: str, *, user: str = "u1", roles: list[str] | None = None) -> httpx.Response:
        return await self.client.get(f"/video-gen/jobs/{job_id}", headers=self.auth(user, roles=roles))

    async def until_terminal(self, job_id: str, *, user: str = "u1", timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.job(job_id, user=user)
            assert r.status_code == 200, r.text
            if r.json()["status"] in ("succeeded", "failed", "cancelled"):
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {r.json()['status']} (safety timeout)")
            await asyncio.sleep(0.05)


def open_gate(name: str) -> None:
    ScriptedModel.gates.setdefault(name, asyncio.Event()).set()


@contextlib.asynccontextmanager
async def running(settings: Settings, *, workers: int = 1) -> AsyncIterator[JobsApi]:
    ScriptedModel.reset()
    async with embedded_stack(settings, registry=registry(), workers=workers) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            api = JobsApi(stack, client)
            try:
                yield api
            finally:
                for gate in list(ScriptedModel.gates.values()):
                    gate.set()
                api.app_state.inbox.release_all()  # release any request still waiting
    ScriptedModel.reset()


@pytest.fixture
def stack_settings(database_url: str, redis_prefix: str, tmp_path: Path) -> Callable[..., Settings]:
    """``stack_settings(sync_wait_seconds=0.5)``: test settings with overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"shutdown_grace_seconds": 1.0, "default_model": "scripted", **overrides}
        return make_settings(values.pop("database_url", database_url), redis_prefix, tmp_path, **values)

    return make


@pytest.fixture
async def jobs_api(stack_settings: Callable[..., Settings]) -> AsyncIterator[JobsApi]:
    async with running(stack_settings()) as api:
        yield api
