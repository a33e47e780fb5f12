"""The CPU pool: work runs in other processes once started, in a thread before; errors come back."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from models_registry import cpu


def _pid() -> int:
    return os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


async def test_work_runs_in_the_pool_processes_once_started_and_in_this_process_before() -> None:
    assert await cpu.run_cpu(_pid) == os.getpid()  # no pool: a thread of this process
    assert cpu.start(1) == 1
    try:
        assert cpu.start(4) == 1  # a second user shares the open pool
        cpu.stop()
        assert await cpu.run_cpu(_pid) != os.getpid()
        with pytest.raises(ValueError, match="bad frame"):
            await cpu.run_cpu(_fail, "bad frame")
    finally:
        cpu.stop()
    assert await cpu.run_cpu(_pid) == os.getpid()


_KILLED_OWNER = """
import asyncio, os, sys, time
from models_registry import cpu
cpu.start(1)
print(asyncio.run(cpu.run_cpu(os.getpid)), flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not reaped by our pid 1
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_the_pool_processes_exit_when_their_owner_is_killed() -> None:
    owner = subprocess.Popen([sys.executable, "-c", _KILLED_OWNER], stdout=subprocess.PIPE, text=True)
    try:
        child = int(owner.stdout.readline())
        assert not _gone(child)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30  # the child looks for its parent once a second
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child), f"pool process {child} outlived its killed owner"
