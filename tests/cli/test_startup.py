"""``video-gen api``/``worker``/``migrate`` refuse to start on a configuration that cannot work:
one line on stderr naming the variable, exit status 2, nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.core.settings import DEV_JWT_SECRET
from tests.conftest import POSTGRES_ADMIN_URL, REDIS_URL

SECRET = "cli-startup-secret-at-least-32-bytes-0123"


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "REDIS_URL": REDIS_URL}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", command],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("video-gen: ")
    return lines[0]


@pytest.mark.parametrize("command", ["api", "worker"])
def test_servers_refuse_the_public_development_secret(command: str, tmp_path: Path) -> None:
    line = _refused(_run(command, {"JWT_SECRET": DEV_JWT_SECRET}, tmp_path))
    assert "JWT_SECRET is the public development value" in line
    line = _refused(_run(command, {}, tmp_path))  # unset: the default is the public value
    assert "JWT_SECRET" in line


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    assert "JWT_SECRET must be at least 32 bytes, got 6" in _refused(_run("api", {"JWT_SECRET": "secret"}, tmp_path))


@pytest.mark.parametrize("url", ["postgres+asyncpg://u@127.0.0.1/db", "mysql://root@127.0.0.1/db"])
def test_migrate_refuses_an_unknown_database_scheme_and_creates_nothing(url: str, tmp_path: Path) -> None:
    line = _refused(_run("migrate", {"DATABASE_URL": url}, tmp_path))
    assert "DATABASE_URL must be sqlite:///path, postgresql://... or postgres://..." in line
    assert list(tmp_path.iterdir()) == []


def test_a_bad_type_is_named_in_words(tmp_path: Path) -> None:
    line = _refused(_run("api", {"JWT_SECRET": SECRET, "PORT": "abc"}, tmp_path))
    assert line == "video-gen: PORT must be an integer, got 'abc'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("veo3", "MODEL_CONCURRENCY must be model=N,... with N >= 1 (e.g. veo3=500,local=2), got 'veo3'"),
        ("local=0", "MODEL_CONCURRENCY must be model=N,... with N >= 1 (e.g. veo3=500,local=2), got 'local=0'"),
        ("veo4=10", "MODEL_CONCURRENCY must name installed models"),
    ],
)
def test_a_bad_model_concurrency_is_refused(value: str, expected: str, tmp_path: Path) -> None:
    line = _refused(_run("worker", {"JWT_SECRET": SECRET, "MODEL_CONCURRENCY": value}, tmp_path))
    assert expected in line


def test_a_database_pool_of_none_is_refused(tmp_path: Path) -> None:
    line = _refused(_run("worker", {"JWT_SECRET": SECRET, "DATABASE_POOL_SIZE": "0"}, tmp_path))
    assert line == "video-gen: DATABASE_POOL_SIZE must be at least 1, got 0"


def test_an_uninstalled_default_model_is_refused(tmp_path: Path) -> None:
    line = _refused(_run("worker", {"JWT_SECRET": SECRET, "DEFAULT_MODEL": "veo4"}, tmp_path))
    assert "DEFAULT_MODEL must name an installed model" in line and "'veo4'" in line


def test_a_database_that_does_not_exist_is_one_line_with_host_port_and_hint(tmp_path: Path) -> None:
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/video_gen_no_such_database"
    line = _refused(_run("api", {"JWT_SECRET": SECRET, "DATABASE_URL": url}, tmp_path))
    assert line.startswith("video-gen: cannot connect to PostgreSQL at ")
    assert "database 'video_gen_no_such_database' does not exist" in line


def test_a_server_that_is_down_is_one_line(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:9/test"  # the discard port: nothing listens
    line = _refused(_run("migrate", {"DATABASE_URL": url}, tmp_path))
    assert "cannot connect to PostgreSQL at 127.0.0.1:9:" in line and "is PostgreSQL running there" in line


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FAL_POLL_SECONDS", "often", "FAL_POLL_SECONDS must be a number, got 'often'"),
        ("LOCAL_MODEL_FPS", "fast", "LOCAL_MODEL_FPS must be an integer, got 'fast'"),
    ],
)
def test_a_plugins_own_setting_is_checked_at_start(variable: str, value: str, expected: str, tmp_path: Path) -> None:
    line = _refused(_run("worker", {"JWT_SECRET": SECRET, variable: value}, tmp_path))
    assert line.endswith(expected)


def test_models_lists_each_model_with_its_availability_and_options(tmp_path: Path) -> None:
    result = _run("models", {}, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) >= {"local", "veo3", "veo3-fast", "veo3.1", "veo3.1-fast"}
    assert " available " in lines["local"] and "options=none" in lines["local"]
    assert "unavailable (FAL_KEY is not set)" in lines["veo3.1"] and "resolution" in lines["veo3.1"]
    with_key = _run("models", {"FAL_KEY": "k"}, tmp_path)
    assert " available " in with_key.stdout.splitlines()[1]
