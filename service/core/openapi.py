"""The OpenAPI document, made to tell the truth once Litestar has built it.

Litestar documents a 400 with its own ``{status_code, detail, extra}`` body, marks every route as
needing the token, and knows nothing of what our middleware answers (401, 429, 431, 415, 503).
``truthful`` rewrites each operation from the same rules the service follows: every error status
it can answer, with the spec's ``{statusCode, message, error}`` body; security only where a token
is needed; ``/metrics`` as text; request constraints (lengths, bounds) from the settings.
Schemathesis checks the result against the running service (``tests/core/test_openapi.py``).
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, Operation, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType

from service.core.auth import PUBLIC_PATHS
from service.core.pagination import MAX_LIMIT

ERROR_BODY = Reference(ref="#/components/schemas/ErrorBody")
SECURITY = [{"BearerToken": []}]
_PUBLIC = tuple(pattern.lstrip("^") for pattern in PUBLIC_PATHS)
_NOT_RATE_LIMITED = ("/health", "/metrics", "/schema", "/console")

_COMMON = {
    500: "Internal server error (the message says no more)",
}
_AUTHENTICATED = {
    401: "Missing, invalid or expired token, or a scheme other than Bearer",
    431: "The Authorization header is too large",
    503: "Redis or the database is unreachable, or the server is shutting down; nothing changed",
}
# What particular routes answer besides (path prefix, method) -> {status: description}.
_EXTRA: dict[tuple[str, str], dict[int, str]] = {
    ("/video-gen/image-to-video", "post"): {
        404: "Source image not found: <key> (also another user's key)",
        413: "Source image is too large",
        422: "Idempotency-Key reused with another body",
    },
    ("/admin/generations/", "post"): {409: "Already refunded, or never charged"},
    ("/admin/queue/dead-letters/", "post"): {409: "The dead letter holds no readable job"},
}


def truthful(openapi: OpenAPI, *, max_prompt_chars: int) -> OpenAPI:
    """Rewrite ``openapi`` (Litestar's, built once) in place; returns it."""
    openapi.security = None
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is not None:
                _operation(path, method, operation)
    _request_constraints(openapi, max_prompt_chars=max_prompt_chars)
    _examples(openapi)
    return openapi


SPEC_EXAMPLE = {"statusCode": 400, "message": ["id should not be empty"], "error": "Bad Request"}


def _examples(openapi: OpenAPI) -> None:
    """Litestar invents random strings as examples (``"bzayzoQbzdXMsvhsvQnj"``): none is better;
    the error body gets the spec's own example."""
    schemas = openapi.components.schemas if openapi.components and openapi.components.schemas else {}
    for schema in schemas.values():
        _drop_examples(schema)
    error = schemas.get("ErrorBody")
    if isinstance(error, Schema):
        error.examples = [SPEC_EXAMPLE]


def _drop_examples(schema: Any, depth: int = 0) -> None:
    if not isinstance(schema, Schema) or depth > 8:
        return
    schema.examples = None
    for child in [*(schema.properties or {}).values(), *(schema.one_of or []), *(schema.any_of or [])]:
        _drop_examples(child, depth + 1)
    _drop_examples(schema.items, depth + 1)


def _operation(path: str, method: str, operation: Operation) -> None:
    public = path.startswith(_PUBLIC)
    operation.security = None if public else SECURITY
    responses = operation.responses if operation.responses is not None else {}
    operation.responses = responses
    if path == "/metrics":
        responses["200"] = OpenAPIResponse(
            description="Prometheus metrics, text exposition format",
            content={"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
        )
        return
    if path == "/health/ready":
        ok = responses["200"]
        responses["503"] = OpenAPIResponse(description="Something it needs does not answer", content=ok.content)  # type: ignore[union-attr]
    for status, description in _errors(path, method, operation, public).items():
        _error(responses, status, description)


def _errors(path: str, method: str, operation: Operation, public: bool) -> dict[int, str]:
    errors = dict(_COMMON)
    if not public:
        errors |= _AUTHENTICATED
        if not path.startswith(_NOT_RATE_LIMITED):
            errors[429] = "Too many requests: wait Retry-After seconds"
    if path.startswith("/admin"):
        errors[403] = "Forbidden resource: the token lacks the admin role"
    if operation.parameters or operation.request_body:
        errors[400] = "Validation error (`message` lists every problem) or a malformed request"
    if operation.request_body:
        errors[415] = "Content-Type must be application/json"
    if "{" in path:
        errors[404] = "Not found (or not yours)"
    for (prefix, extra_method), extra in _EXTRA.items():
        if path.startswith(prefix) and method == extra_method:
            errors |= extra
    return errors


def _error(responses: dict[str, Any], status: int, description: str) -> None:
    """Document ``status`` with the spec's error body (keeping a route's own description)."""
    existing = responses.get(str(status))
    if isinstance(existing, OpenAPIResponse) and existing.description and "Exception" not in existing.description:
        description = existing.description
    responses[str(status)] = OpenAPIResponse(
        description=description, content={"application/json": OpenAPIMediaType(schema=ERROR_BODY)}
    )


def _request_constraints(openapi: OpenAPI, *, max_prompt_chars: int) -> None:
    """What the validation refuses, said in the schema: lengths of the spec's fields, NUL, limits."""
    no_nul = "^[^\\u0000]*$"
    schemas = openapi.components.schemas if openapi.components and openapi.components.schemas else {}
    request = schemas.get("ImageToVideoRequest")
    if isinstance(request, Schema) and request.properties:
        for name, (low, high) in {"id": (1, 1024), "prompt": (1, max_prompt_chars)}.items():
            prop = request.properties.get(name)
            if isinstance(prop, Schema):
                prop.min_length, prop.max_length, prop.pattern = low, high, no_nul
    for item in (openapi.paths or {}).values():
        body = item.post.request_body if item.post else None
        content = getattr(body, "content", None) or {}
        for media in content.values():  # strict bodies: an unknown property is a 400
            ref = getattr(media.schema, "ref", "")
            target = schemas.get(ref.rsplit("/", 1)[-1]) if ref else None
            if isinstance(target, Schema):
                target.additional_properties = False
        for operation in (item.get, item.post):
            for parameter in (operation.parameters if operation else None) or []:
                if getattr(parameter, "name", None) == "limit" and isinstance(parameter.schema, Schema):
                    parameter.schema.minimum, parameter.schema.maximum = 1, MAX_LIMIT
