"""One webhook attempt: resolve and check the address, POST the signed payload to that address,
read a bounded excerpt of the answer.

- the connection goes to the checked address: the URL carries the address, the ``Host`` header
  and TLS (SNI and certificate check) carry the name, and connections are never reused, so one
  made for another name cannot carry this request;
- no redirects are followed (a 3xx is a failed attempt), proxies from the environment are ignored;
- the whole attempt, DNS included, is bounded by ``WEBHOOK_TIMEOUT_SECONDS``;
- at most ``RESPONSE_EXCERPT`` bytes of the answer are read and kept.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from service.webhooks import safety, signing
from service.webhooks.messages import Attempt, WebhookDelivery

RESPONSE_EXCERPT = 256
USER_AGENT = "video-gen-webhooks/1"
Resolve = Callable[..., Awaitable[safety.Target]]


@dataclass(frozen=True)
class Result:
    attempt: Attempt
    delivered: bool
    refused: bool = False
    """The target may never be sent to (SSRF): no retry."""


class Sender:
    """Sends attempts; one per worker process (``close`` it)."""

    def __init__(
        self,
        keys: list[bytes],
        *,
        timeout: float,
        allow_private: bool,
        verify: ssl.SSLContext | bool = True,
        resolve: Resolve = safety.resolve,
    ) -> None:
        self.keys, self.timeout, self.allow_private, self._resolve = keys, timeout, allow_private, resolve
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            verify=verify,
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, delivery: WebhookDelivery) -> Result:
        """One attempt of ``delivery``; never raises for anything the network or the receiver does."""
        started, clock = time.time(), time.monotonic()

        def attempt(**fields: object) -> Attempt:
            return Attempt(at=started, duration_ms=int((time.monotonic() - clock) * 1000), **fields)  # type: ignore[arg-type]

        try:
            async with asyncio.timeout(self.timeout):
                target = await self._resolve(delivery.url, allow_private=self.allow_private)
                status, excerpt = await self._post(target, delivery)
        except safety.Refused as exc:
            return Result(attempt(error=str(exc)), delivered=False, refused=True)
        except TimeoutError:
            return Result(attempt(error=f"timed out after {self.timeout:g}s"), delivered=False)
        except (httpx.HTTPError, OSError, ssl.SSLError, ValueError) as exc:  # ValueError: h11 on a bad answer
            return Result(attempt(error=f"{type(exc).__name__}: {exc}"[:300]), delivered=False)
        return Result(attempt(status_code=status, response=excerpt), delivered=200 <= status < 300)

    async def _post(self, target: safety.Target, delivery: WebhookDelivery) -> tuple[int, str]:
        body = delivery.payload.encode()
        headers = {
            **signing.headers(self.keys, delivery.id, int(time.time()), body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            "host": target.host_header,
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self.client.build_request("POST", target.url, content=body, headers=headers, extensions=extensions)
        response = await self.client.send(request, stream=True)
        try:
            excerpt = b""
            async for chunk in response.aiter_raw():
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT:
                    break
        finally:
            await response.aclose()
        return response.status_code, excerpt[:RESPONSE_EXCERPT].decode(errors="replace")
