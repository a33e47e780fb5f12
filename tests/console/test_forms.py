"""How the console reads its forms: local times in the viewer's zone, amounts, notices."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar.testing import RequestFactory

from service.console.formatting import millis, when
from service.console.forms import amount_of, filter_params, local_time, notice, page_url


def test_a_local_time_is_read_in_the_viewers_zone() -> None:
    tokyo = local_time("2026-11-27T09:30", "Asia/Tokyo")
    assert tokyo is not None and tokyo.astimezone(UTC) == datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    assert local_time("2026-11-27T09:30", None) == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert local_time("2026-11-27T09:30", "Not/AZone") == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert local_time("2026-11-27T09:30+01:00", "Asia/Tokyo").utcoffset().total_seconds() == 3600  # type: ignore[union-attr]
    assert local_time("yesterday", "UTC") is None and local_time("", "UTC") is None


def test_amounts_use_the_admin_apis_words() -> None:
    assert amount_of(" 750 ") == (750, [])
    assert amount_of("") == (None, ["amount should not be empty"])
    assert amount_of("7.5") == (None, ["amount must be an integer number"])
    assert amount_of("-3") == (None, ["amount must be a positive number"])
    assert amount_of("1" * 20)[1] == ["amount must not be greater than 1000000000000"]


def test_notices_show_only_what_the_console_wrote() -> None:
    assert notice("refund.12") == "Refunded (admin action #12, shown in the audit trail)."
    assert notice("<script>.1") is None and notice("refund.x") is None and notice(None) is None


def test_links_keep_filters_and_drop_empty_ones() -> None:
    assert page_url("/console/generations", {"user": "u 1", "model": ""}, cursor="abc") == (
        "/console/generations?user=u+1&cursor=abc"
    )
    assert page_url("/console/queue", {}) == "/console/queue"


def test_times_and_lengths_read_like_a_person_says_them() -> None:
    assert str(when("2026-11-27T09:30:05.123Z")) == (
        '<time datetime="2026-11-27T09:30:05.123Z" title="2026-11-27T09:30:05.123Z">2026-11-27 09:30:05 UTC</time>'
    )
    assert str(when('"><script>')).count("<script>") == 0
    assert [millis(850), millis(2940), millis(185_000), millis(None)] == ["850 ms", "2.9 s", "3 min 5 s", "-"]


def test_a_list_pages_links_keep_its_filters_but_not_its_cursor() -> None:
    request = RequestFactory().get("/console/audit", query_params={"user": "u1", "kind": "refund", "cursor": "c"})
    assert filter_params(request) == {"user": "u1", "kind": "refund"}
