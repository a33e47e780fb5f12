"""The environments a benchmark run needs beside the project's own.

- ``bench_models()``: installs ``bench/models`` (the ``bench-noop`` and ``bench-sleep`` plugins)
  into this environment for the run and uninstalls it afterwards, so the API and worker processes
  find them through the same entry points as any third-party plugin.
- ``python()``: the interpreter of ``bench/.peers-venv``, made on first use with uv, holding what
  the peer-bench prototype and peers run on (pinned below, uvicorn's standard extras included).
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
]


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


def python() -> str:
    interpreter = VENV / "bin" / "python"
    if not interpreter.exists():
        _uv("venv", "-q", "-p", "3.11", str(VENV))
        _uv("pip", "install", "-q", "--python", str(interpreter), *PEER_PACKAGES)
    return str(interpreter)
