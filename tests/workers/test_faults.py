"""The test-only crash hook: inert when unset, kills only at its point and its N-th job."""

from __future__ import annotations

import signal

import pytest

from workers import faults


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: seen.append((pid, sig)))
    monkeypatch.setattr(faults, "_seen", {})
    return seen


def test_unset_it_does_nothing(kills, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    for point in faults.POINTS:
        faults.crash_point(point, "job-1")
    assert kills == []


def test_it_kills_at_its_point_on_the_nth_job(kills, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV_VAR, "after_upload:2")
    faults.crash_point("after_debit", "a")
    faults.crash_point("after_upload", "a")
    faults.crash_point("after_upload", "a")  # the same job again is still the first
    assert kills == []
    faults.crash_point("after_upload", "b")
    assert kills == [(faults.os.getpid(), signal.SIGKILL)]


def test_without_n_the_first_job_dies(kills, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV_VAR, "before_ack")
    faults.crash_point("before_ack", "a")
    assert len(kills) == 1


def test_a_misspelt_point_is_refused(kills, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV_VAR, "after_dbit")
    with pytest.raises(SystemExit, match="after_debit, during_generation, after_upload, before_webhook, before_ack"):
        faults.crash_point("after_debit", "a")
