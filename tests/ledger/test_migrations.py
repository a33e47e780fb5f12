"""The schema comes only from Piccolo migrations: ``video-gen migrate`` builds it from an empty
database on SQLite and PostgreSQL, and the API and the workers refuse an unmigrated database,
saying what to run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.core import db
from service.core.embedded_redis import free_port
from service.core.settings import project_root
from tests.conftest import POSTGRES_ADMIN_URL, REDIS_URL, _pg_url

TABLES = {"accounts", "ledger_entries", "generations", "admin_actions"}


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with nothing in it: a new SQLite path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    name = f"video_gen_empty_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _pg_url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def video_gen(*args: str, database_url: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "PORT": str(free_port()),
        "REDIS_KEY_PREFIX": f"vgtest-{uuid.uuid4().hex[:12]}",
        "STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "JWT_SECRET": "test-secret-at-least-32-bytes-long-0123",
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def _tables(url: str) -> set[str]:
    if db.is_postgres(url):
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()
        return {r["tablename"] for r in rows}
    import sqlite3

    with sqlite3.connect(db.sqlite_path(url)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("command", ["worker", "api"])
async def test_the_services_refuse_an_unmigrated_database(empty_database: str, tmp_path: Path, command: str) -> None:
    result = video_gen(command, database_url=empty_database, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "The database is not migrated" in result.stderr + result.stdout
    assert "Run `video-gen migrate` first." in result.stderr + result.stdout
    assert not TABLES & await _tables(empty_database)  # refusing created nothing


async def test_migrate_builds_the_schema_from_nothing(empty_database: str, tmp_path: Path) -> None:
    first = video_gen("migrate", database_url=empty_database, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert await _tables(empty_database) >= TABLES
    again = video_gen("migrate", database_url=empty_database, tmp_path=tmp_path)  # nothing left to do
    assert again.returncode == 0, again.stderr
    await db.connect(empty_database)
    try:
        assert await db.pending_migrations() == []
        await db.require_migrated()
    finally:
        await db.disconnect()
    verify = video_gen("ledger", "verify", database_url=empty_database, tmp_path=tmp_path)
    assert verify.returncode == 0 and "ledger ok" in verify.stdout
