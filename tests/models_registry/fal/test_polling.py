"""When a fal request's status is polled: growing, jittered waits, and a resumed request's spread
first poll."""

from __future__ import annotations

from itertools import islice

from models_registry.fal.polling import poll_delays, resume_delay


def test_status_polls_back_off_with_jitter_up_to_the_cap() -> None:
    delays = list(islice(poll_delays(3.0, 10.0), 1000))
    assert 2.4 <= delays[0] <= 3.6 and 3.6 <= delays[1] <= 5.4  # 3 s, then 1.5 times that, +-20 %
    assert all(8.0 <= d <= 12.0 for d in delays[4:])  # capped at 10 s, +-20 %
    assert len({round(d, 6) for d in delays[4:]}) > 900  # jittered: jobs started together drift apart
    assert 51 <= sum(delays[:8]) <= 78  # 64 s +-20 %: a 60 s generation is polled about 8 times
    assert list(islice(poll_delays(5.0, 1.0), 3)) != [] and all(
        4.0 <= d <= 6.0 for d in islice(poll_delays(5.0, 1.0), 50)
    )


def test_resumed_requests_spread_their_first_poll_over_the_longest_interval() -> None:
    delays = [resume_delay(3.0, 10.0) for _ in range(1000)]
    assert all(0 <= d <= 10.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 900  # resumed together, polled apart
    assert all(0 <= resume_delay(1.0, 30.0) <= 4.0 for _ in range(100))  # at most four first intervals


def test_the_client_module_still_exports_the_polling_names() -> None:
    """``models_registry.fal.client`` is part of the plugin contract: names that moved stay importable."""
    from models_registry.fal import client, polling

    assert client.poll_delays is polling.poll_delays
    assert (client.POLL_BACKOFF, client.POLL_JITTER) == (polling.POLL_BACKOFF, polling.POLL_JITTER)
