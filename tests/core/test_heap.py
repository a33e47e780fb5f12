"""The collector's settings for a server process: what exists at start is frozen, the young
generation's threshold raised; Python's own settings are restored after the test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service.core import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_what_exists_and_raises_the_young_threshold() -> None:
    kept = [object() for _ in range(100)]
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == max(heap.YOUNG_THRESHOLD, 700)


@pytest.mark.usefixtures("restored_gc")
def test_a_higher_threshold_an_operator_set_is_kept() -> None:
    gc.set_threshold(50_000, 10, 10)
    heap.settle()
    assert gc.get_threshold() == (50_000, 10, 10)
