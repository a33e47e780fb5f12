"""How fal's failures become the service's errors, and the bounded retry of transient ones.

| fal answer                                   | becomes                                        |
| -------------------------------------------- | ---------------------------------------------- |
| 422 ``{"detail": [...]}`` / ``{"detail": ""}`` | ``ProviderRejected`` naming why (client error) |
| 401 / 403                                    | ``GenerationFailed``: the FAL_KEY was rejected |
| 429, 5xx, network errors, no answer in time  | retried with backoff, then ``GenerationFailed`` |
| anything else                                | ``GenerationFailed("<details>")``              |
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fal_client import FalClientError, FalClientHTTPError

from models_registry.errors import GenerationFailed, ModelError, ProviderRejected

T = TypeVar("T")


class RetryableProviderError(ModelError):
    """A transient fal failure (429, 5xx, network) worth another try; never leaves this module's retry."""


def describe_detail(detail: Any) -> str:
    """A readable sentence from fal's ``detail`` (a string, or a list of pydantic-style errors)."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(_describe_item(item) for item in detail) or "no details given"
    return json.dumps(detail)


def _describe_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    message = str(item.get("msg") or item.get("message") or json.dumps(item))
    kind = str(item.get("type") or "")
    where = ".".join(str(p) for p in item.get("loc") or [] if p != "body")
    if "content_policy" in kind:
        message = f"content policy violation: {message}"
    return f"{message} ({where})" if where else message


def classify(exc: BaseException, what: str, provider: str = "Veo") -> ModelError | None:
    """The service error for a failure while ``what`` (e.g. "submitting"); None if not fal's/HTTP's.

    ``RetryableProviderError`` marks the transient ones; ``with_retries`` decides when to give up.
    """
    if isinstance(exc, FalClientHTTPError):
        return _from_status(exc.status_code, describe_detail(exc.message), what, fal_api=True, provider=provider)
    if isinstance(exc, httpx.HTTPStatusError):
        return _from_status(exc.response.status_code, exc.response.reason_phrase, what, fal_api=False)
    if isinstance(exc, httpx.TransportError):
        return RetryableProviderError(f"network error while {what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, (FalClientError, httpx.HTTPError)):
        return GenerationFailed(f"fal.ai error while {what}: {exc}")
    return None


def _from_status(status: int, details: str, what: str, *, fal_api: bool, provider: str = "Veo") -> ModelError:
    if status == 422 and fal_api:
        return ProviderRejected(f"{provider} rejected the request: {details}")
    if status in (401, 403) and fal_api:
        return GenerationFailed(f"fal.ai rejected the FAL_KEY (HTTP {status}): {details}")
    if status == 429 or status >= 500:
        return RetryableProviderError(f"fal.ai answered HTTP {status} while {what}: {details}")
    return GenerationFailed(f"fal.ai answered HTTP {status} while {what}: {details}")


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int,
    base_delay: float,
    attempt_seconds: float | None = None,
    budget_seconds: float | None = None,
    provider: str = "Veo",
) -> T:
    """Run ``operation``, retrying transient failures ``attempts`` times in all with doubling delays.

    Each attempt is cut at ``attempt_seconds`` (fal-client retries on its own, 10 times, inside
    one call) and all of them at ``budget_seconds``: an unreachable fal fails the step in seconds.
    Every fal or HTTP failure leaves as a ``ModelError``: the job's reply is then the spec's body
    whatever went wrong, and a persistently unavailable fal ends as ``GenerationFailed``.
    """
    started = time.monotonic()
    deadline = None if budget_seconds is None else started + budget_seconds
    for attempt in range(1, attempts + 1):
        left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        bound = min((s for s in (attempt_seconds, left) if s is not None), default=None)
        try:
            async with asyncio.timeout(bound):
                return await operation()
        except Exception as exc:
            error = _no_answer(what) if isinstance(exc, TimeoutError) else classify(exc, what, provider)
            if error is None:
                raise
            if not isinstance(error, RetryableProviderError):
                raise error from exc
            delay = base_delay * 2 ** (attempt - 1)
            if attempt >= attempts or (deadline is not None and time.monotonic() + delay >= deadline):
                spent = time.monotonic() - started
                raise GenerationFailed(f"{error} (gave up after {attempt} attempts in {spent:.1f} s)") from exc
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: attempts must be >= 1")


def _no_answer(what: str) -> RetryableProviderError:
    return RetryableProviderError(f"fal.ai could not be reached or did not answer in time while {what}")
