"""The CPU pool: work runs in other processes once started, in a thread before; errors come back."""

from __future__ import annotations

import os

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
