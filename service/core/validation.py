"""One strict-body mechanism for every JSON body: the raw JSON is checked before it is decoded.

A route declares ``opt={"validate_body": check}`` with ``check(request, body) -> list[str]``; the
app runs ``strict_body`` before every handler. Decoding alone would coerce (``"amount": "10"``)
or stop at the first problem; class-validator, whose words the spec's clients parse, lists every
problem at once, and so do we: a spec-shaped 400 before the handler runs. The handler then gets
its msgspec Struct, decoded from the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from service.core.errors import BadRequest, UnsupportedMediaType, ValidationFailed

BodyCheck = Callable[[Request[Any, Any, Any], Any], list[str]]


def strict(check: BodyCheck) -> dict[str, Any]:
    """The route ``opt`` that makes ``strict_body`` run ``check`` on the route's raw JSON body."""
    return {"validate_body": check}


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


MAX_NESTING = 8  # how deep ``has_nul`` looks into a body's containers


def has_nul(value: Any, depth: int = 0) -> bool:
    """A NUL anywhere in a string, a key or a nested value (PostgreSQL stores none of them)."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > MAX_NESTING:
        return False
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v, depth + 1) for v in value)
    return False


def _no_nul_in_parameters(request: Request[Any, Any, Any]) -> None:
    names = [name for name, value in request.query_params.multi_items() if has_nul(value) or has_nul(name)]
    names += [name for name, value in request.path_params.items() if has_nul(value)]
    if names:
        raise ValidationFailed([f"{name} must not contain null characters" for name in dict.fromkeys(names)])


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Before every handler: no NUL in path or query parameters; on routes declaring a body check,
    a JSON ``Content-Type``, a body that decodes, the route's check, and no NUL in the body."""
    _no_nul_in_parameters(request)
    check: BodyCheck | None = request.route_handler.opt.get("validate_body")
    if check is None:
        return
    if not _is_json(request.headers.get("content-type")):
        # A form or text body must not slip through as JSON: browsers send those cross-site freely.
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:
        body = await request.json()
    except SerializationException:
        return  # not JSON: decoding the handler's body reports it
    except RecursionError:
        raise BadRequest("Malformed JSON body: nested too deeply") from None
    except UnicodeDecodeError:
        raise BadRequest("Malformed JSON body: not valid UTF-8") from None
    messages = check(request, body)
    if not messages and isinstance(body, dict):
        messages = [f"{key} must not contain null characters" for key, value in body.items() if has_nul(value)]
    if messages:
        raise ValidationFailed(messages)


def required_string(body: dict[str, Any], name: str) -> list[str]:
    """class-validator's ``@IsString() @IsNotEmpty()`` messages for ``body[name]``."""
    value = body.get(name)
    if value is None:
        return [f"{name} should not be empty", f"{name} must be a string"]
    if not isinstance(value, str):
        return [f"{name} must be a string"]
    if value == "":
        return [f"{name} should not be empty"]
    return []
