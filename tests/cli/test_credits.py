"""The operator CLI: ``video-gen credits grant|show`` and ``video-gen ledger verify``, run as the
real console command against SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.admin.tables import AdminAction
from service.core import db
from service.core.settings import project_root
from service.ledger import service as ledger
from tests.ledger.raw import RawSQL, move


@pytest.fixture
async def connected(database_url: str) -> AsyncIterator[str]:
    await db.connect(database_url)
    try:
        yield database_url
    finally:
        await db.disconnect()


def video_gen(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_grant_then_show(connected: str) -> None:
    granted = video_gen(connected, "credits", "grant", "u1", "900", "--reason", "welcome pack", "--admin", "ops-kim")
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == "granted 900 credits to u1: balance 900.0"
    assert await ledger.balance_of("u1") == 900
    [action] = await AdminAction.select().output(load_json=True)
    assert (action["admin_id"], action["action"], action["target_user_id"], action["reason"]) == (
        "ops-kim",
        "grant",
        "u1",
        "welcome pack",
    )
    shown = video_gen(connected, "credits", "show", "u1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "u1: balance 900.0"
    assert "grant" in lines[1] and "+900" in lines[1] and "-> 900.0" in lines[1] and "welcome pack" in lines[1]
    nobody = video_gen(connected, "credits", "show", "nobody")
    assert nobody.stdout.splitlines() == ["nobody: balance 0.0"]


async def test_a_grant_must_be_a_positive_integer_with_a_reason(connected: str) -> None:
    for args in (
        ["u1", "0", "--reason", "x"],
        ["u1", "-3", "--reason", "x"],
        ["u1", "ten", "--reason", "x"],
        ["u1", "10"],
    ):
        result = video_gen(connected, "credits", "grant", *args)
        assert result.returncode == 2, args
    assert await ledger.balance_of("u1") == 0


async def test_verify_exits_non_zero_on_any_violation(connected: str) -> None:
    await ledger.grant("u1", 100, actor="test", reason="r")
    clean = video_gen(connected, "ledger", "verify")
    assert clean.returncode == 0 and "ledger ok" in clean.stdout
    await RawSQL(connected).run(move(5), bypass_triggers=True)
    broken = video_gen(connected, "ledger", "verify")
    assert broken.returncode == 1
    assert "VIOLATION balance_is_sum_of_entries: balance 105 but entries sum to 100 (user=u1)" in broken.stdout
    assert "1 violation(s)" in broken.stderr


def test_the_cli_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = video_gen(f"sqlite:///{tmp_path / 'empty.sqlite'}", "credits", "show", "u1")
    assert result.returncode != 0
    assert "Run `video-gen migrate` first." in result.stderr + result.stdout
