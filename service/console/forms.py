"""What the console's forms send, and how it is read: times in the viewer's zone, amounts and
reasons checked with the admin API's words, and links that keep a page's filters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from litestar import Request
from litestar.params import QueryParameter

from service.ledger.service import MAX_AMOUNT

# A page's query parameters: an optional filter or cursor, and a page size.
Text = Annotated[str | None, QueryParameter()]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
MAX_REASON = 1000


class ReasonForm(msgspec.Struct, kw_only=True):
    """A refund, requeue or discard: why, and whether the operator confirmed it."""

    reason: str = ""
    confirm: str = ""


class GrantForm(msgspec.Struct, kw_only=True):
    amount: str = ""
    reason: str = ""
    confirm: str = ""


def local_time(value: str | None, zone: str | None) -> datetime | None:
    """A ``datetime-local`` field's value (``2026-11-27T14:30``) in the viewer's time zone
    (an IANA name the page's script sends; UTC when absent or unknown), as an aware datetime.
    An ISO time with its own offset keeps it."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return moment
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    return moment.replace(tzinfo=tz)


def reason_problems(reason: str) -> list[str]:
    reason = reason.strip()
    if not reason:
        return ["reason should not be empty"]
    if len(reason) > MAX_REASON:
        return [f"reason must be shorter than or equal to {MAX_REASON} characters"]
    return []


def amount_of(text: str) -> tuple[int | None, list[str]]:
    """A grant's amount, or the admin API's messages for it."""
    text = text.strip()
    if not text:
        return None, ["amount should not be empty"]
    if not text.lstrip("-").isdigit():
        return None, ["amount must be an integer number"]
    amount = int(text)
    if amount <= 0:
        return None, ["amount must be a positive number"]
    if amount > MAX_AMOUNT:
        return None, [f"amount must not be greater than {MAX_AMOUNT}"]
    return amount, []


def filter_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A list page's filters as it was asked for them, without its cursor: what its links keep."""
    return {k: v for k, v in request.query_params.items() if k != "cursor"}


def page_url(path: str, params: dict[str, Any], **changes: Any) -> str:
    """``path`` with ``params`` (empty ones dropped) and ``changes`` applied: filters survive paging."""
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


NOTICES = {
    "refund": "Refunded",
    "grant": "Credits granted",
    "requeue": "Requeued: the job is back on the jobs stream",
    "discard": "Dead letter discarded",
    "resend": "Webhook queued again, with the same webhook-id",
}


def done_url(path: str, action: str, action_id: int) -> str:
    """Where an action redirects to (POST, then GET: a reload does not repeat it)."""
    return f"{path}?done={action}.{action_id}"


def notice(done: str | None) -> str | None:
    """The sentence for a ``done`` marker ``done_url`` made; nothing for anything else."""
    action, _, action_id = (done or "").partition(".")
    if action not in NOTICES or not action_id.isdigit():
        return None
    return f"{NOTICES[action]} (admin action #{action_id}, shown in the audit trail)."
