"""Request and response bodies of the admin API.

Bodies are strict (camelCase, unknown fields refused). When one does not decode, the route's
``validate_body`` lists every problem in class-validator's words, as the spec's 400 does.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from service.core.validation import required_string
from service.ledger.service import MAX_AMOUNT

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Amount = Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT)]


class GrantRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """``POST /admin/credits/grants``."""

    user_id: UserId
    """The user whose account receives the credits (created on first grant)."""
    amount: Amount
    """Credits to add: a positive integer."""
    reason: NonEmpty
    """Why: shown in the audit trail."""


class RefundRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """``POST /admin/generations/{id}/refund``."""

    reason: NonEmpty


class CancelRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """``POST /admin/generations/{id}/cancel``."""

    reason: NonEmpty


class CancelOut(msgspec.Struct, rename="camel", kw_only=True):
    """``POST /admin/generations/{id}/cancel``: the job as it ends and the recorded action."""

    generation_id: str
    user_id: str
    status: str
    refunded: int
    action_id: int


class GrantOut(msgspec.Struct, rename="camel", kw_only=True):
    user_id: str
    amount: int
    balance: float
    entry_id: int
    action_id: int


class RefundOut(msgspec.Struct, rename="camel", kw_only=True):
    generation_id: str
    user_id: str
    refunded: int
    balance: float
    action_id: int


class AuditItem(msgspec.Struct, rename="camel", kw_only=True):
    """One line of the audit trail: a ledger entry (``type='entry'``) or an admin action.

    For an entry ``kind`` is grant/debit/refund/adjustment and ``actor`` the user, admin or
    ``system`` that moved the credits; for an action ``kind`` is the action (grant, refund, cancel),
    ``actor`` the admin and ``userId`` its target.
    """

    type: str
    id: int
    created_at: str
    kind: str
    user_id: str | None
    generation_id: str | None
    actor: str
    reason: str
    amount: int | None = None
    balance_after: float | None = None
    details: dict[str, Any] | None = None


class AuditPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[AuditItem]
    next_cursor: str | None


def _string(body: dict[str, Any], name: str, limit: int) -> list[str]:
    messages = required_string(body, name)
    if not messages and len(body[name]) > limit:
        return [f"{name} must be shorter than or equal to {limit} characters"]
    return messages


def _amount(body: dict[str, Any]) -> list[str]:
    value = body.get("amount")
    if value is None:
        return ["amount should not be empty", "amount must be an integer number"]
    if isinstance(value, bool) or not isinstance(value, int):
        return ["amount must be an integer number"]
    if value <= 0:
        return ["amount must be a positive number"]
    return [f"amount must not be greater than {MAX_AMOUNT}"] if value > MAX_AMOUNT else []


def _messages(body: Any, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    return [f"property {key} should not exist" for key in body if key not in allowed]


def grant_messages(_: Any, body: Any) -> list[str]:
    """Every validation message for a grant body (``validate_body`` of the route)."""
    messages = _messages(body, ("userId", "amount", "reason"))
    if isinstance(body, dict):
        messages += _string(body, "userId", 255) + _amount(body) + _string(body, "reason", 1000)
    return messages


def refund_messages(_: Any, body: Any) -> list[str]:
    messages = _messages(body, ("reason",))
    return messages + _string(body, "reason", 1000) if isinstance(body, dict) else messages
