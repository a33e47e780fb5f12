"""An identity provider's signing keys, fetched from its JWKS URL and kept in memory.

pyjwt's ``PyJWKClient`` does the fetching and parsing (no redirects, http(s) only). The cache and
its refresh rules are ours, because the provider's availability must never become ours:

- keys are refetched every ``cache_seconds`` by a background task, never on a request's path;
- a token naming an unknown ``kid`` triggers one refetch (key rotation), but such refetches are at
  least ``cooldown_seconds`` apart, so a flood of random ``kid``s costs the provider one request;
- when the provider is down the last good keys stay in use, and fetching is retried every
  ``cooldown_seconds`` until it answers; ``loaded`` is false (readiness not ok) until the first
  set of keys arrives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import structlog
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWKError

from service.core.settings import SettingsError
from service.core.tasks import cancel_until_done

log = structlog.get_logger(__name__)
FETCH_TIMEOUT_SECONDS = 5.0


def check_jwks_url(url: str) -> str:
    """``url`` if keys may be fetched from it: HTTPS, or plain HTTP on a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return url
    raise SettingsError(f"JWT_JWKS_URL must be an https:// URL (http:// only on a loopback address), got {url!r}")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JwksKeys:
    """The provider's signing keys by ``kid``; see the module docstring for the refresh rules."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        cooldown_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_jwks_url(url)
        self.cache_seconds, self.cooldown_seconds, self._clock = cache_seconds, cooldown_seconds, clock
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=FETCH_TIMEOUT_SECONDS)
        self._keys: dict[str, PyJWK] = {}
        self._lock = asyncio.Lock()
        self._last_forced: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.loaded = False
        self.fetches = 0  # requests sent to the provider, successful or not
        self.error: str | None = None  # why the last fetch failed, until one succeeds

    @property
    def keys(self) -> dict[str, PyJWK]:
        return dict(self._keys)

    async def refresh(self) -> bool:
        """Fetch the key set once; on failure keep the keys we have. True when it succeeded."""
        async with self._lock:
            return await self._fetch()

    async def _fetch(self) -> bool:
        self.fetches += 1
        try:
            jwk_set = await asyncio.to_thread(self._client.get_jwk_set, True)
        except (PyJWKClientError, PyJWKError, OSError, ValueError) as exc:
            self.error = str(exc) or type(exc).__name__
            log.warning("jwks.fetch_failed", url=self.url, error=self.error, keeping=len(self._keys))
            return False
        # A key without a kid is kept under "": tokens naming no kid use it when it is the only key.
        keys = {k.key_id or "": k for k in jwk_set.keys if k.public_key_use in ("sig", None)}
        if not keys:
            self.error = "the key set has no signing key"
            log.warning("jwks.fetch_failed", url=self.url, error=self.error, keeping=len(self._keys))
            return False
        if self._keys and keys.keys() != self._keys.keys():
            log.info("jwks.rotated", url=self.url, kids=sorted(keys))
        self._keys, self.loaded, self.error = keys, True, None
        return True

    async def key(self, kid: str) -> PyJWK | None:
        """The key named ``kid``; an unknown one triggers a refetch unless one was made for an
        unknown ``kid`` less than ``cooldown_seconds`` ago."""
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid in self._keys:  # fetched while this request waited for the lock
                return self._keys[kid]
            now = self._clock()
            if self._last_forced is not None and now - self._last_forced < self.cooldown_seconds:
                return None
            self._last_forced = now
            await self._fetch()
        return self._keys.get(kid)

    def only_key(self) -> PyJWK | None:
        """The key when the set holds exactly one (for tokens that name no ``kid``)."""
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def start(self) -> None:
        """First fetch now (a clear warning when the provider does not answer), then keep the keys
        fresh in the background."""
        if not await self.refresh():
            log.warning(
                "jwks.unavailable_at_start",
                url=self.url,
                error=self.error,
                retry_seconds=self.cooldown_seconds,
                hint="tokens are refused and /health/ready is 503 until the keys are loaded",
            )
        self._task = asyncio.create_task(self._keep_fresh(), name="jwks-refresh")

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.cache_seconds if self.error is None else self.cooldown_seconds)
            await self.refresh()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done([self._task], 5.0, owner="jwks")  # a refresh may swallow one cancel
            self._task = None
