"""Fixtures for the console: a signed-in HTTP client, and headless Chromium (Debian's package at
``/usr/bin/chromium``, driven by Playwright; no browser is ever downloaded).

The browser suite's longer tests carry ``@pytest.mark.browser_suite``: ``just test`` leaves them
out (they are reported as deselected) and ``just browser`` runs them all, with
``VIDEO_GEN_BROWSER_SUITE=1``. Screenshots go to ``test-artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.core.settings import Settings, project_root
from service.embedded import embedded_stack
from tests.conftest import Api, make_settings
from tests.factories import TestModels, token_for

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = project_root() / "test-artifacts" / "console"
SUITE = bool(os.environ.get("VIDEO_GEN_BROWSER_SUITE"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser_suite: a longer browser test, run by `just browser`")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SUITE:
        return
    left_out = [i for i in items if i.get_closest_marker("browser_suite")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [i for i in items if not i.get_closest_marker("browser_suite")]


CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


class Console:
    """An HTTP client signed in to the console (or not), posting forms with their CSRF token."""

    def __init__(self, api: Api, client: httpx.AsyncClient) -> None:
        self.api, self.client, self.csrf = api, client, ""

    async def sign_in(self, user_id: str = "admin-ann", roles: list[str] | None = None, **kw: Any) -> httpx.Response:
        page = await self.client.get("/console/sign-in")
        self.csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        token = token_for(self.api.settings, user_id, roles=["admin"] if roles is None else roles, **kw)
        return await self.client.post("/console/sign-in", data={"token": token, "_csrf_token": self.csrf})

    async def post(self, path: str, **fields: str) -> httpx.Response:
        return await self.client.post(path, data={"_csrf_token": self.csrf, **fields})


@pytest.fixture
async def console(api: Api) -> AsyncIterator[Console]:
    async with httpx.AsyncClient(base_url=api.stack.url, timeout=60) as client:
        yield Console(api, client)


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture
def browser_settings(sqlite_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    return make_settings(sqlite_url, redis_prefix, tmp_path)


@pytest.fixture
async def site(browser_settings: Settings) -> AsyncIterator[Api]:
    """The whole stack on SQLite (one database is enough for what a browser checks)."""
    async with embedded_stack(browser_settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            yield Api(stack, client)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") or SUITE:
            raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
