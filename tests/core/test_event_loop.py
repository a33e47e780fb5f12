"""``EVENT_LOOP``: the loop a process runs on and the HTTP parser uvicorn uses with it."""

from __future__ import annotations

import asyncio

import pytest

from service.core.event_loop import http_parser_for, run_on
from service.core.settings import Settings


async def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(
    ("event_loop", "module", "parser"), [("uvloop", "uvloop", "httptools"), ("asyncio", "asyncio", "h11")]
)
def test_each_loop_runs_with_its_parser(event_loop: str, module: str, parser: str) -> None:
    assert run_on(event_loop, _loop_name()).startswith(module)
    assert http_parser_for(event_loop) == parser
    settings = Settings(event_loop=event_loop)
    assert settings.run(_loop_name()).startswith(module) and settings.http_parser == parser
