"""The environments a benchmark run needs beside the project's own.

- ``bench_models()``: installs ``bench/models`` (the ``bench-noop`` and ``bench-sleep`` plugins)
  into this environment for the run and uninstalls it afterwards, so the API and worker processes
  find them through the same entry points as any third-party plugin.
- ``python()``: the interpreter of ``bench/.peers-venv``, made on first use with uv, holding what
  the peer-bench prototype and the taskiq-redis and saq peers run on (pinned below, uvicorn's
  standard extras included).
- ``arq_python()``: the interpreter of ``bench/.arq-venv``, likewise: arq 0.28 needs redis-py 5,
  which the prototype's redis-py 8 excludes.

Each venv records the package list it was made with and is brought up to date when the list
here changes, so an older venv gains a peer added later.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
ARQ_VENV = HERE / ".arq-venv"
PEER_PACKAGES = [
    "litestar[jwt]==2.25.0",
    "uvicorn==0.54.0",
    "uvloop",
    "httptools",
    "redis>=8",
    "hiredis",
    "asyncpg",
    "msgspec",
    "pyjwt",
    "psutil",
    "taskiq==0.13.0",
    "taskiq-redis==1.2.4",
    "saq==0.26.4",
]
ARQ_PACKAGES = ["arq==0.28.0", "redis==5.3.1", "hiredis", "uvloop", "psutil"]


def _uv(*args: str) -> None:
    subprocess.run(["uv", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def bench_models() -> Iterator[None]:
    try:
        distribution("video-gen-bench-models")
        installed_here = False
    except PackageNotFoundError:
        _uv("pip", "install", "--python", sys.executable, "-e", str(HERE / "models"))
        installed_here = True
    try:
        yield
    finally:
        if installed_here:
            _uv("pip", "uninstall", "--python", sys.executable, "video-gen-bench-models")


def _venv(folder: Path, packages: list[str]) -> str:
    """The interpreter of ``folder``, made with uv and holding ``packages`` (installed again when
    the list differs from the one recorded at the last install)."""
    interpreter, stamp = folder / "bin" / "python", folder / "bench-packages.txt"
    wanted = "\n".join(packages)
    if not interpreter.exists():
        _uv("venv", "-q", "-p", "3.11", str(folder))
    if not stamp.exists() or stamp.read_text() != wanted:
        _uv("pip", "install", "-q", "--python", str(interpreter), *packages)
        stamp.write_text(wanted)
    return str(interpreter)


def python() -> str:
    return _venv(VENV, PEER_PACKAGES)


def arq_python() -> str:
    return _venv(ARQ_VENV, ARQ_PACKAGES)
