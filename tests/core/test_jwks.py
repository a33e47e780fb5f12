"""The provider's key cache against a JWKS server on loopback: rotation, unknown-kid floods,
outages, and which URLs keys may come from."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from service.core.jwks import JwksKeys, check_jwks_url
from service.core.settings import SettingsError
from tests.fakes.identity_provider import IdentityProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    idp = IdentityProvider().start()
    yield idp
    idp.stop()


async def test_keys_are_fetched_once_and_served_from_memory(provider: IdentityProvider) -> None:
    keys = JwksKeys(provider.url)
    assert await keys.refresh() and keys.loaded
    assert set(keys.keys) == {k.kid for k in provider.keys}
    for _ in range(20):
        assert await keys.key(provider.rsa.kid) is not None
    assert provider.fetches == 1


async def test_a_rotated_key_is_fetched_once(provider: IdentityProvider) -> None:
    clock = Clock()
    keys = JwksKeys(provider.url, cooldown_seconds=10, clock=clock)
    await keys.refresh()
    new = provider.rotate(retire=True)
    found = await asyncio.gather(*(keys.key(new.kid) for _ in range(10)))
    assert all(k is not None and k.key_id == new.kid for k in found)
    assert provider.fetches == 2  # the start, and one refetch shared by the ten requests


async def test_a_flood_of_unknown_kids_costs_the_provider_one_fetch_per_cooldown(provider: IdentityProvider) -> None:
    clock = Clock()
    keys = JwksKeys(provider.url, cooldown_seconds=10, clock=clock)
    await keys.refresh()
    results = await asyncio.gather(*(keys.key(f"random-{i}") for i in range(200)))
    assert results == [None] * 200
    assert provider.fetches == 2
    clock.now += 5
    assert await keys.key("random-x") is None and provider.fetches == 2
    clock.now += 6  # the cooldown is over: one more
    assert [await keys.key(f"again-{i}") for i in range(50)] == [None] * 50
    assert provider.fetches == 3
    assert await keys.key(provider.rsa.kid) is not None  # known keys never wait


async def test_the_last_good_keys_are_kept_while_the_provider_is_down(provider: IdentityProvider) -> None:
    clock = Clock()
    keys = JwksKeys(provider.url, cooldown_seconds=10, clock=clock)
    await keys.refresh()
    provider.down = True
    assert not await keys.refresh()
    assert keys.loaded and keys.error and "503" in keys.error
    assert await keys.key(provider.rsa.kid) is not None
    provider.down = False
    assert await keys.refresh() and keys.error is None


async def test_start_warns_and_retries_until_the_provider_answers(provider: IdentityProvider) -> None:
    provider.down = True
    keys = JwksKeys(provider.url, cooldown_seconds=0.05, cache_seconds=60)
    await keys.start()
    try:
        assert not keys.loaded and keys.error
        provider.down = False
        for _ in range(200):
            if keys.loaded:
                break
            await asyncio.sleep(0.02)
        assert keys.loaded and keys.error is None
        fetches = provider.fetches
        await asyncio.sleep(0.2)
        assert provider.fetches == fetches  # loaded: the next fetch waits cache_seconds
    finally:
        await keys.stop()


async def test_a_provider_that_never_answered_is_retried_on_the_cooldown(provider: IdentityProvider) -> None:
    provider.stop()
    clock = Clock()
    keys = JwksKeys(provider.url, cooldown_seconds=10, clock=clock)
    assert not await keys.refresh() and not keys.loaded
    assert await keys.key("any") is None and await keys.key("other") is None
    assert keys.fetches == 2  # the start and one refetch for an unknown kid, not one per request


@pytest.mark.parametrize(
    "url",
    [
        "https://tenant.auth0.com/.well-known/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
    ],
)
def test_https_or_loopback_http(url: str) -> None:
    assert check_jwks_url(url) == url


@pytest.mark.parametrize(
    "url", ["http://idp.example/jwks", "http://10.0.0.5/jwks", "file:///etc/passwd", "ftp://x/y", "jwks.json"]
)
def test_plain_http_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="JWT_JWKS_URL must be an https:// URL"):
        JwksKeys(url)
