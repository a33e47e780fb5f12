"""``run_worker``: ``on_started`` (``video-gen worker`` settles the heap there) is called once
everything is open, before the worker stops."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from models_registry import cpu
from models_registry.registry import ModelRegistry
from service.storage import images
from tests.conftest import make_settings
from tests.factories import TestModels
from workers.main import run_worker


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_started_is_called_once_the_worker_is_open(
    database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, redis_prefix, tmp_path)
    stop, calls = asyncio.Event(), []

    def started() -> None:
        calls.append("started")
        stop.set()

    await asyncio.wait_for(
        run_worker(settings, registry=TestModels.registry(), stop=stop, name="w-main", on_started=started), 60
    )
    assert calls == ["started"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_image_decoders_are_loaded_in_a_thread_before_the_first_job(
    database_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, redis_prefix, tmp_path)
    stop, loaded = asyncio.Event(), []
    monkeypatch.setattr(images, "load_decoders", lambda: loaded.append(threading.get_ident()))

    def started() -> None:
        loaded.append("started")
        stop.set()

    await asyncio.wait_for(
        run_worker(settings, registry=TestModels.registry(), stop=stop, name="w-img", on_started=started), 60
    )
    assert len(loaded) == 2 and loaded[1] == "started" and loaded[0] != threading.get_ident()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_process_does_its_file_work_in_io_threads(
    database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, redis_prefix, tmp_path, io_threads=3)
    seen: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        def started() -> None:
            executor = asyncio.get_running_loop()._default_executor  # asyncio keeps no public getter
            seen.append(executor._max_workers)
            stop.set()

        registry = TestModels.registry()
        await asyncio.wait_for(
            run_worker(settings, registry=registry, stop=stop, name="w-io", on_started=started, own_loop=True), 60
        )

    asyncio.run(main())
    assert seen == [3]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_worker_that_fails_to_start_leaves_a_shared_cpu_pool_open(
    database_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: object, settings: object) -> None:
        raise RuntimeError("a plugin failed to open")

    monkeypatch.setattr(ModelRegistry, "open_all", broken)
    settings = make_settings(database_url, redis_prefix, tmp_path)
    cpu.start(1)  # another worker pool of the same process (the embedded stack) uses it
    try:
        with pytest.raises(RuntimeError, match="failed to open"):
            await asyncio.wait_for(run_worker(settings, stop=asyncio.Event(), name="w-broken"), 60)
        assert cpu._pool is not None and cpu._users == 1
    finally:
        cpu.stop()
    assert cpu._pool is None
