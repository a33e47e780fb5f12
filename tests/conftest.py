"""Shared fixtures: real Redis with a per-test key prefix, fresh SQLite and PostgreSQL databases,
and the whole stack (API over HTTP + a worker pool) in the test's event loop.

Redis and PostgreSQL are the machine's (``TEST_REDIS_URL``, ``TEST_POSTGRES_URL``); every test
uses its own key prefix and a clean database, and removes what it made. With no Redis on
127.0.0.1:6379 a private redis-server is spawned for the run; with no PostgreSQL the PostgreSQL
half of the suite is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from service.core import db
from service.core.embedded_redis import EmbeddedRedis, free_port
from service.core.settings import Settings
from service.embedded import Stack, embedded_stack
from tests.factories import TestModels, token_for
from tests.fakes.fal_queue import VIDEO_DIR_ENV as FAKE_FAL_VIDEOS

# Plugins read their own settings from the environment when the registry creates them: small fast
# local videos, and no fal model available unless a test provides a key (and a fake fal).
os.environ.update(LOCAL_MODEL_WIDTH="320", LOCAL_MODEL_HEIGHT="180", LOCAL_MODEL_FPS="12")
os.environ.pop("FAL_KEY", None)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _redis_url() -> str:
    if os.environ.get("TEST_REDIS_URL"):
        return os.environ["TEST_REDIS_URL"]
    if _reachable("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    server = EmbeddedRedis()
    atexit.register(server.stop)
    return server.start()


REDIS_URL = _redis_url()
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = ["ledger_entries", "accounts", "generations", "admin_actions"]


def _pg_url(database: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


async def _probe_postgres() -> None:
    conn = await asyncio.wait_for(asyncpg.connect(POSTGRES_ADMIN_URL), 5)
    await conn.close()


def pytest_configure(config: pytest.Config) -> None:
    """The fake fal's rendered clips go to a directory of this run, shared by its test processes
    (they inherit the variable) and removed by the process that made it when the run ends."""
    if not os.environ.get(FAKE_FAL_VIDEOS):
        os.environ[FAKE_FAL_VIDEOS] = tempfile.mkdtemp(prefix="video-gen-fake-fal-")
        config.stash[_OWN_FAKE_FAL_VIDEOS] = os.environ[FAKE_FAL_VIDEOS]


def pytest_unconfigure(config: pytest.Config) -> None:
    if (path := config.stash.get(_OWN_FAKE_FAL_VIDEOS, None)) is not None:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(FAKE_FAL_VIDEOS, None)


_OWN_FAKE_FAL_VIDEOS = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run, dropped afterwards."""
    try:
        asyncio.run(_probe_postgres())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({exc}); set TEST_POSTGRES_URL")
    name = f"video_gen_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _pg_url(name)
    asyncio.run(db.migrate(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite"
    asyncio.run(db.migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "video-gen.sqlite"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
async def clean_postgres(postgres_url: str) -> str:
    # TRUNCATE does not fire the append-only triggers: only tests may empty the ledger.
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
    finally:
        await conn.close()
    return postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL, from a clean database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("clean_postgres")


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are deleted afterwards."""
    prefix = f"vgtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def settings(database_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, redis_prefix, tmp_path)


def make_settings(database_url: str, redis_prefix: str, tmp_path: Path, **overrides: object) -> Settings:
    """Test settings: small fast videos, no rate limit, a private storage directory."""
    values: dict[str, object] = dict(
        jwt_secret="test-secret-at-least-32-bytes-long-0123",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        storage_url=f"file://{tmp_path / 'storage'}",
        host="127.0.0.1",
        port=free_port(),
        worker_concurrency=2,
        rate_limit_per_minute=0,
        sync_wait_seconds=60,
        job_lease_seconds=5,
        default_model="local",
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Api:
    """An HTTP client on the running stack, with helpers for tokens."""

    def __init__(self, stack: Stack, client: httpx.AsyncClient) -> None:
        self.stack, self.client, self.settings = stack, client, stack.settings

    def auth(self, user_id: str = "u1", *, roles: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(self.settings, user_id, roles=roles)}"}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The whole stack (API over real HTTP, one worker pool, the local model) for one test."""
    async with embedded_stack(settings, registry=TestModels.registry()) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            yield Api(stack, client)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A private directory removed after the test (pytest's tmp_path keeps old runs around)."""
    path = Path(tempfile.mkdtemp(prefix="video-gen-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
